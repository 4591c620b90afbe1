"""``lima shell``: run a shell or a command in the instance over SSH."""

from __future__ import annotations

import shlex
import subprocess
import sys

import typer

from ..errors import InstanceError


def shell(
    name: str = typer.Argument(..., help="the instance"),
    command: list[str] = typer.Argument(None, help="command to run (default: a login shell)"),
    workdir: str = typer.Option(None, "--workdir", help="directory in the guest to run in"),
) -> None:
    """Open a shell in the instance, or run COMMAND there; exits with the command's status."""
    from .. import sshutil, store
    from ..limatype import STATUS_RUNNING

    inst_dir = store.existing_dir(name)
    inst = store.inspect(name)
    if inst.status != STATUS_RUNNING:
        why = f" ({'; '.join(inst.errors)})" if inst.errors else ""
        raise InstanceError(f"instance {name!r} is {inst.status or 'not running'}{why}; "
                            + (f"run `lima start {name}`" if not inst.errors else "fix that first"))
    parts = []
    if workdir:
        parts.append(f"cd {shlex.quote(workdir)} || exit 1")
    if command and command[0] == "--":  # `lima shell NAME -- cmd`: the separator is ours, not the guest's
        command = command[1:]
    if command:
        parts.append("exec " + shlex.join(command))
    else:
        parts.append('exec "${SHELL:-/bin/sh}" -l')
    interactive = not command and sys.stdin.isatty()
    args = sshutil.command(inst_dir, name, tty=True if interactive else None) + ["--", "; ".join(parts)]
    raise typer.Exit(_run(args))


def _has_fd(stream: object) -> bool:
    try:
        stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _run(args: list[str]) -> int:
    """Run ssh on our stdio; relay through pipes when stdio is not a real file (embedding, tests)."""
    if all(_has_fd(s) for s in (sys.stdin, sys.stdout, sys.stderr)):
        return subprocess.run(args).returncode
    data = sys.stdin.read() if not _has_fd(sys.stdin) else None
    proc = subprocess.run(args, input=data.encode() if isinstance(data, str) else data,
                          stdin=None if data is not None else sys.stdin, capture_output=True)
    sys.stdout.write(proc.stdout.decode(errors="replace"))
    sys.stderr.write(proc.stderr.decode(errors="replace"))
    return proc.returncode
