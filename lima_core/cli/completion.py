"""``lima completion SHELL``: the shell completion script (typer's machinery), as ``limactl completion``."""

from __future__ import annotations

import typer

SHELLS = ("bash", "zsh", "fish", "powershell")


def completion(shell: str = typer.Argument(..., help="bash, zsh, fish or powershell")) -> None:
    """Generate the autocompletion script for the specified shell.

    \b
    bash:        source <(lima completion bash)
    zsh:         lima completion zsh > "${fpath[1]}/_lima"
    fish:        lima completion fish > ~/.config/fish/completions/lima.fish
    powershell:  lima completion powershell | Out-String | Invoke-Expression
    """
    from typer.completion import get_completion_script

    from ._common import choice

    choice(shell, SHELLS, "shell")
    print(get_completion_script(prog_name="lima", complete_var="_LIMA_COMPLETE", shell=shell))
