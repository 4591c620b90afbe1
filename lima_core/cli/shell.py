"""``lima shell``: a login shell, or a command, in the instance over SSH (Lima's ``limactl shell``).

As in Lima, the guest runs ``cd DIR; exec [env VARS] SHELL --login [-c COMMAND]``:
- DIR is ``--workdir`` (the command fails if the guest has no such directory); else the host's
  current directory as the guest sees it through the instance's mounts, else the host's home
  as mounted, else the guest user's home (where SSH starts);
- SHELL is ``--shell`` or the guest user's login shell;
- COMMAND is the words after the instance name, each quoted, except leading ``VAR=value``
  words, which stay assignments (``lima shell NAME -- FOO=bar env``);
- ``--preserve-env`` passes the host's environment, less Lima's block list.
The exit status is the command's (255 when SSH itself failed).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import PurePosixPath

import typer

from ..errors import InstanceError
from ._common import complete_instances, info, tty

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: Lima's default block list for --preserve-env (``pkg/envutil``); ``*`` matches any characters
DEFAULT_BLOCK = ("BASH*", "DISPLAY", "DYLD_*", "EUID", "FPATH", "GID", "GROUP", "HOME", "HOSTNAME", "LD_*",
                 "LOGNAME", "OLDPWD", "PATH", "PWD", "SHELL", "SHLVL", "SSH_*", "TERM", "TERMINFO", "TMPDIR", "UID",
                 "USER", "XAUTHORITY", "XDG_*", "ZDOTDIR", "ZSH*", "_*")
_PATTERN = re.compile(r"^[A-Za-z0-9_*]+$")


def shell(
    name: str = typer.Argument(..., help="the instance", autocompletion=complete_instances),
    command: list[str] = typer.Argument(None, help="command to run (default: a login shell)", show_default=False),
    workdir: str = typer.Option(None, "--workdir", help="working directory in the guest (it must exist)"),
    shell_: str = typer.Option(None, "--shell", help="shell interpreter, e.g. /bin/bash (default: the user's)"),
    preserve_env: bool = typer.Option(False, "--preserve-env", help="pass the host's environment to the shell "
                                      "(less $LIMA_SHELLENV_BLOCK; $LIMA_SHELLENV_ALLOW names the only ones)"),
    start_: bool = typer.Option(False, "--start", help="start the instance if it is not running"),
    reconnect: bool = typer.Option(False, "--reconnect", help="drop the SSH connection kept open for the instance "
                                   "and make a new one"),
) -> None:
    """Execute a shell, or a command, in the instance; exits with the command's status.

    \b
    Examples:
      lima shell default                      a login shell
      lima shell default uname -a             a command
      lima shell default -- FOO=bar env       a command with variables set
      lima shell --workdir=/tmp default ls    a command in /tmp
    """
    from .. import sshutil, store
    from ..limatype import STATUS_RUNNING, STATUS_STOPPED

    inst_dir = store.existing_dir(name)
    inst = store.inspect(name)
    if inst.status != STATUS_RUNNING:
        if inst.status == STATUS_STOPPED and (start_ or (tty() and sys.stdin.isatty() and _confirm_start())):
            _start(name)
            inst = store.inspect(name)
        else:
            why = f" ({'; '.join(inst.errors)})" if inst.errors else ""
            # A Broken instance's errors say what to do about it; `lima start` would fail on it.
            hint = (f"run `lima start {name}`, or `lima shell --start {name}`" if inst.status == STATUS_STOPPED
                    else "fix that first" if inst.errors else f"run `lima start {name}`")
            raise InstanceError(f"instance {name!r} is {inst.status or 'not running'}{why}; {hint}")
    if command and command[0] == "--":  # `lima shell NAME -- cmd`: the separator is ours, not the guest's
        command = command[1:]
    if command and command[0] in ("create", "start", "delete", "shell"):
        import logging

        logging.getLogger("lima_core").warning("perhaps you meant `lima %s`?", " ".join(command))
    if reconnect:
        info(f"Exiting the SSH connection of the instance {name!r}")
        sshutil.stop_master(inst_dir, name)
    script = remote_script(command or [], workdir=workdir, shell=shell_, env=_environment() if preserve_env else [],
                           mounts=_mounts(inst), cwd=_cwd(), home=os.path.expanduser("~"))
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    args = sshutil.command(inst_dir, name, tty=True if interactive else None)
    if "COLORTERM" in os.environ:
        args[1:1] = ["-o", "SendEnv=COLORTERM"]
    raise typer.Exit(_run([*args, "--", script]))


def remote_script(command: list[str], *, workdir: str | None, shell: str | None, env: list[str],
                  mounts: list[tuple[str, str]], cwd: str | None, home: str) -> str:
    """The script the guest runs (a pure function of the request; see the module's docstring).

    *mounts* are ``(host location, guest mount point)``.
    """
    if workdir:
        cd = f"cd {shlex.quote(workdir)} || exit 1"
    else:
        tries = [d for d in (_in_guest(cwd, mounts), _in_guest(home, mounts)) if d]
        cd = " || ".join(f"cd {shlex.quote(d)} 2>/dev/null" for d in dict.fromkeys(tries)) or ":"
    interpreter = shlex.quote(shell) if shell else '"$SHELL"'
    prefix = ("env " + " ".join(shlex.quote(e) for e in env) + " ") if env else ""
    script = f"{cd} ; exec {prefix}{interpreter} --login"
    if command:
        words: list[str] = []
        assigning = True
        for word in command:
            if assigning and _ASSIGNMENT.match(word):
                key, value = word.split("=", 1)
                words.append(f"{key}={shlex.quote(value)}")
            else:
                assigning = False
                words.append(shlex.quote(word))
        script += " -c " + shlex.quote(" ".join(words))
    return script


def _in_guest(path: str | None, mounts: list[tuple[str, str]]) -> str | None:
    """*path* (a host directory) as the guest sees it through the longest mount that holds it."""
    if not path:
        return None
    best: tuple[int, str] | None = None
    for location, point in mounts:
        loc = location.rstrip("/") or "/"
        if path == loc or path.startswith(loc.rstrip("/") + "/"):
            rel = os.path.relpath(path, loc)
            guest = point if rel == "." else str(PurePosixPath(point) / rel)
            if best is None or len(loc) > best[0]:
                best = (len(loc), guest)
    return best[1] if best else None


def _mounts(inst: object) -> list[tuple[str, str]]:
    cfg = getattr(inst, "config", None)
    if cfg is None or cfg.plain:
        return []
    return [(m.location, m.mount_point or m.location) for m in cfg.mounts or [] if m.location]


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the host's current directory was removed
        return None


def _matches(name: str, pattern: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), name) is not None


def _patterns(variable: str) -> list[str] | None:
    value = os.environ.get(variable, "")
    if not value:
        return None
    patterns = [p.strip() for p in value.lstrip("+").split(",") if p.strip()]
    for pattern in patterns:
        if not _PATTERN.match(pattern):
            raise InstanceError(f"${variable}: {pattern!r} is not a valid pattern (letters, digits, '_' and '*')")
    return patterns


def _environment() -> list[str]:
    """``--preserve-env``: the host's environment less Lima's block list ($LIMA_SHELLENV_BLOCK replaces it, or
    adds to it with a leading '+'); with $LIMA_SHELLENV_ALLOW, only the variables it names."""
    allow = _patterns("LIMA_SHELLENV_ALLOW")
    block = _patterns("LIMA_SHELLENV_BLOCK")
    if block is None:
        block = list(DEFAULT_BLOCK)
    elif os.environ.get("LIMA_SHELLENV_BLOCK", "").startswith("+"):
        block = list(DEFAULT_BLOCK) + block
    out = []
    for key, value in sorted(os.environ.items()):
        if "\n" in value or "\0" in value:
            continue
        if allow is not None:
            if any(_matches(key, p) for p in allow):
                out.append(f"{key}={value}")
        elif not any(_matches(key, p) for p in block):
            out.append(f"{key}={value}")
    return out


def _confirm_start() -> bool:
    return typer.confirm("The instance is not running. Do you want to start it now?", default=True, err=True)


def _start(name: str) -> None:
    from .. import instance
    from .start import ready

    if instance.start(name, progress=info):
        ready(name)


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
