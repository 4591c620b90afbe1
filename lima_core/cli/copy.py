"""``lima copy`` (``cp``): files between the host and instances, with scp or rsync over each instance's SSH.

``INSTANCE:PATH`` names a file in an instance (a relative PATH is in the guest user's home);
anything else is a host path. ``--backend auto`` uses rsync when the host and every guest
involved have it and one instance is involved, else scp; scp copies between two instances
through the host (``-3``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import typer

from ..errors import InstanceError, LimaError
from ._common import choice

BACKENDS = ("auto", "scp", "rsync")


def copy(
    paths: list[str] = typer.Argument(..., help="SOURCE... TARGET; INSTANCE:PATH for a path in an instance"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="copy directories recursively"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show the copy's progress"),
    backend: str = typer.Option("auto", "--backend", help="auto, scp or rsync"),
) -> None:
    """Copy files between host and guest (or between guests).

    \b
    Examples:
      lima copy default:/etc/os-release .
      lima copy -r ./project default:~/
    """
    choice(backend, BACKENDS, "backend")
    if len(paths) < 2:
        raise LimaError("give at least one SOURCE and a TARGET (INSTANCE:PATH for a path in an instance)")
    words, instances = _parse(paths)
    if not instances:
        raise LimaError("none of the paths is in an instance (write INSTANCE:PATH); for host-to-host copies use cp")
    tool = _choose(backend, instances)
    with tempfile.TemporaryDirectory(prefix="lima-copy-") as tmp:
        config = _config(instances, Path(tmp))
        if tool == "rsync":
            ssh = f"{shutil.which('ssh') or 'ssh'} -F {_quote(config)}"
            args = ["rsync", "-a" if recursive else "-lptgoD", "-e", ssh]
            if verbose:
                args += ["-v", "--progress"]
        else:
            args = [_need("scp"), "-F", str(config)]
            if recursive:
                args.append("-r")
            if verbose:
                args.append("-v")
            if len(instances) > 1:
                args.append("-3")
        code = subprocess.run([*args, "--", *words]).returncode
    raise typer.Exit(code)


def _parse(paths: list[str]) -> tuple[list[str], dict[str, Path]]:
    """The words for scp/rsync (``lima-NAME:PATH``), and each instance's directory."""
    from .. import sshutil, store
    from ..limatype import STATUS_RUNNING

    words: list[str] = []
    instances: dict[str, Path] = {}
    for arg in paths:
        parts = arg.split(":")
        if len(parts) == 1 or os.path.exists(arg):
            words.append(arg)
            continue
        if len(parts) > 2:
            raise LimaError(f"path {arg!r} contains more than one colon")
        name, path = parts
        inst_dir = store.existing_dir(name)
        inst = store.inspect(name)
        if inst.status != STATUS_RUNNING:
            raise InstanceError(f"instance {name!r} is {inst.status or 'not running'}; run `lima start {name}`")
        instances[name] = inst_dir
        words.append(f"{sshutil.host_alias(name)}:{path}")
    return words, instances


def _config(instances: dict[str, Path], tmp: Path) -> Path:
    """One ssh config with every instance's Host block (scp and rsync take one -F)."""
    from .. import filenames

    if len(instances) == 1:
        return next(iter(instances.values())) / filenames.SSH_CONFIG
    merged = tmp / "ssh.config"
    merged.write_text("".join((d / filenames.SSH_CONFIG).read_text() + "\n" for d in instances.values()))
    return merged


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise LimaError(f"{tool} was not found on PATH; install it (Debian: apt install "
                        f"{'openssh-client' if tool == 'scp' else tool}) or choose another --backend")
    return path


def _choose(backend: str, instances: dict[str, Path]) -> str:
    if backend == "scp":
        return "scp"
    if backend == "rsync":
        _need("rsync")
        if len(instances) > 1:
            raise LimaError("rsync cannot copy between two instances; use --backend=scp")
        missing = [n for n, d in instances.items() if not _guest_has(n, d, "rsync")]
        if missing:
            raise LimaError(f"instance {missing[0]!r} has no rsync; install it there or use --backend=scp")
        return "rsync"
    if shutil.which("rsync") and len(instances) == 1 and all(_guest_has(n, d, "rsync") for n, d in instances.items()):
        return "rsync"
    return "scp"


def _guest_has(name: str, inst_dir: Path, tool: str) -> bool:
    from .. import sshutil

    args = sshutil.command(inst_dir, name, connect_timeout=10, tty=False)
    try:
        proc = subprocess.run([*args, "--", f"command -v {tool}"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def _quote(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))
