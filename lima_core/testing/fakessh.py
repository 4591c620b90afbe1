"""A stand-in for ``ssh`` reaching the fake driver's VM, for lifecycle tests without QEMU.

Installed as ``ssh`` first on PATH (see :func:`install`), it accepts the
arguments lima passes (``-F <inst>/ssh.config [-o ...] [-t|-T] lima-NAME -- CMD``),
refuses like a closed port while the fake VM is not running, and otherwise
runs CMD with ``sh -c`` on the host, with ``/run/`` mapped into the VM's
``fakevm-root`` (where the fake VM wrote ``lima-ssh-ready`` and
``lima-boot-done``), in the command and in a script piped to it. A
ControlMaster's ``-O forward -L LOCAL:REMOTE`` of a unix socket makes LOCAL a
symlink to the mapped REMOTE (how the host agent reaches the fake guest's
agent), ``-O cancel`` removes it; other ``-O`` commands succeed doing
nothing. Real SSH is exercised by the qemu end-to-end tests.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .fakevm import ROOT, RUNNING


def main(argv: list[str]) -> int:
    config = None
    control = ""
    forward = ""
    i = 0
    rest: list[str] = []
    while i < len(argv):
        arg = argv[i]
        if arg in ("-F", "-o", "-p", "-i", "-l", "-O", "-L", "-R"):
            if arg == "-F":
                config = argv[i + 1]
            elif arg == "-O":
                control = argv[i + 1]
            elif arg == "-L":
                forward = argv[i + 1]
            i += 2
            continue
        if arg.startswith("-") and arg != "--":
            i += 1
            continue
        rest = argv[i:]
        break
    if config is None or not rest:
        print("fake ssh: usage: ssh -F CONFIG HOST -- COMMAND", file=sys.stderr)
        return 255
    inst_dir = Path(config).parent
    if not (inst_dir / RUNNING).exists():
        print(f"ssh: connect to host {rest[0]}: Connection refused", file=sys.stderr)
        return 255
    command = rest[1:]
    if command and command[0] == "--":
        command = command[1:]
    root = inst_dir / ROOT
    if control:
        return _control(control, forward, root)
    script = " ".join(command) or "true"
    run = f"{_plain_path(root)}/run/"
    script = script.replace("/run/", run)
    # A script piped to an interpreter (the host agent's requirements) reads /run/ too.
    stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read().replace(b"/run/", run.encode())
    # A login on the guest: its home, and its login shell in $SHELL (bash, which takes --login as Lima passes it).
    return subprocess.run(["sh", "-c", script], input=stdin,
                          env={**os.environ, "HOME": str(root), "SHELL": shutil.which("bash") or "/bin/sh"}).returncode


def _control(op: str, forward: str, root: Path) -> int:
    """A ControlMaster command: only unix-socket forwards do something (see the module docstring)."""
    local, sep, remote = forward.partition(":")
    if not (sep and local.startswith("/") and remote.startswith("/")):
        return 0
    link = Path(local)
    if op == "forward":
        if link.exists() or link.is_symlink():
            print(f"unix_listener: cannot bind to path {local}: Address already in use", file=sys.stderr)
            return 255
        link.symlink_to(remote.replace("/run/", f"{root}/run/", 1) if remote.startswith("/run/") else remote)
    elif op == "cancel" and link.is_symlink():
        link.unlink()
    return 0


def _plain_path(root: Path) -> str:
    """*root* as a path that is safe to paste into a shell script: itself, or a symlink to it (in the
    temporary directory, named by a hash) when it holds spaces, quotes or other shell syntax."""
    if shlex.quote(str(root)) == str(root):
        return str(root)
    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob("lima-fakessh-*"):  # links of instances deleted since
        if old.is_symlink() and not old.exists():
            old.unlink(missing_ok=True)
    link = tmp / f"lima-fakessh-{hashlib.sha256(str(root).encode()).hexdigest()[:16]}"
    try:
        link.symlink_to(root)
    except FileExistsError:
        pass
    return str(link)


def install(bin_dir: Path) -> Path:
    """Write an ``ssh`` executable into *bin_dir* (put it first on PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "ssh"
    path.write_text(f"#!{sys.executable}\nimport sys\nfrom lima_core.testing.fakessh import main\n"
                    "sys.exit(main(sys.argv[1:]))\n")
    path.chmod(0o755)
    return path


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
