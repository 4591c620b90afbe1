"""virtiofsd: one daemon per virtiofs mount, started before QEMU and stopped after it (reference §4.6).

Found as Lima finds it: the first ``share/qemu/vhost-user/*.json`` of type
``fs`` under ``~/.local``, QEMU's prefix and ``/usr`` whose binary answers
``--version``. Two implementations answer to that name: the Rust virtiofsd
(``--shared-dir``; Debian's ``virtiofsd`` package from trixie on) and QEMU's
own C one (``-o source=``; ``/usr/lib/qemu/virtiofsd`` in Debian bookworm's
qemu-system-common); both are driven the same way.

Each daemon listens on ``virtiofsd-<i>.sock`` in the instance directory,
logs to ``virtiofsd-<i>.log`` and has its pid in ``virtiofsd-<i>.pid``
(with lima-core's identity record, so ``lima stop -f`` can kill it). A daemon
serves one connection: it exits when QEMU closes it, QEMU's death included.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from lima_core import pidfile, processes
from lima_core.errors import StartFailed, ValidationError
from lima_core.mounts import ResolvedMount

from . import idmap

log = logging.getLogger(__name__)

#: how long a daemon gets to create its socket (Lima: 5 x 200 ms; a loaded host needs more)
SOCKET_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class Binary:
    path: str
    #: "rust" (``--shared-dir``) or "c" (``-o source=``)
    flavour: str


def socket_path(instance_dir: Path, index: int) -> Path:
    return instance_dir / f"virtiofsd-{index}.sock"


def pid_path(instance_dir: Path, index: int) -> Path:
    return instance_dir / f"virtiofsd-{index}.pid"


def log_path(instance_dir: Path, index: int) -> Path:
    return instance_dir / f"virtiofsd-{index}.log"


def search_dirs(qemu_exe: str) -> list[Path]:
    """Where the vhost-user descriptions are looked for, in Lima's order."""
    prefix = Path(os.path.realpath(qemu_exe)).parent.parent
    return [Path.home() / ".local", prefix, Path("/usr")]


def find(qemu_exe: str) -> Binary:
    """The virtiofsd to run. :raises ValidationError: none is installed."""
    seen: list[str] = []
    for base in dict.fromkeys(search_dirs(qemu_exe)):
        for desc in sorted((base / "share" / "qemu" / "vhost-user").glob("*.json")):
            try:
                data = json.loads(desc.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(data, dict) or data.get("type") != "fs" or not isinstance(data.get("binary"), str):
                continue
            binary = data["binary"]
            seen.append(binary)
            try:
                version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                                         stdin=subprocess.DEVNULL)
                usage = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10,
                                       stdin=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError):
                continue
            if version.returncode == 0:
                return Binary(binary, "rust" if "--shared-dir" in usage.stdout + usage.stderr else "c")
    tried = f" (found {', '.join(seen)}, which did not answer --version)" if seen else ""
    raise ValidationError("mountType virtiofs needs virtiofsd, and none was found in share/qemu/vhost-user under "
                          f"~/.local, QEMU's prefix or /usr{tried}; install it (Debian: apt install virtiofsd, "
                          "or qemu-system-common on bookworm), or use mountType 9p")


def command(binary: Binary, sock: Path, shared_dir: str) -> list[str]:
    if binary.flavour == "rust":
        return [binary.path, "--socket-path", str(sock), "--shared-dir", shared_dir]
    return [binary.path, f"--socket-path={sock}", "-o", f"source={shared_dir}"]


def start(instance_dir: Path, binary: Binary, mounts: Sequence[ResolvedMount], guest_uid: int) -> None:
    """One daemon per virtiofs mount of *mounts*, each listening once this returns.

    :raises StartFailed: a daemon exited or made no socket in time (the ones started are stopped).
    """
    wanted = [m for m in mounts if m.mount_type == "virtiofs"]
    if not wanted:
        return
    stop(instance_dir)
    wrap: list[str] = []
    if idmap.needed(guest_uid):
        why = idmap.unavailable(guest_uid)
        if why:
            log.warning("cannot map the guest user's uid %d to yours for virtiofs (%s): the guest sees the host's "
                        "owners", guest_uid, why)
        else:
            wrap = idmap.prefix(guest_uid, keep_caps=True)
    started: list[tuple[ResolvedMount, subprocess.Popen]] = []
    try:
        for m in wanted:
            sock = socket_path(instance_dir, m.index)
            sock.unlink(missing_ok=True)
            args = wrap + command(binary, sock, m.location)
            log.info("starting virtiofsd for %s: %s", m.location, " ".join(args))
            with open(log_path(instance_dir, m.index), "ab") as out:
                try:
                    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                            start_new_session=True, close_fds=True)
                except OSError as exc:
                    raise StartFailed(f"cannot run {args[0]}: {exc.strerror}") from None
            pidfile.write(pid_path(instance_dir, m.index), proc.pid)
            started.append((m, proc))
        for m, proc in started:
            _wait_socket(instance_dir, m, proc)
    except BaseException:
        stop(instance_dir)
        raise


def _wait_socket(instance_dir: Path, m: ResolvedMount, proc: subprocess.Popen) -> None:
    sock, logfile = socket_path(instance_dir, m.index), log_path(instance_dir, m.index)
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while not sock.exists():
        code = proc.poll()
        if code is not None:
            raise StartFailed(f"virtiofsd for {m.location} {processes.describe_exit(code)}: "
                              f"{processes.log_tail(logfile) or '(no output)'} (log: {logfile})")
        if time.monotonic() > deadline:
            raise StartFailed(f"virtiofsd for {m.location} made no socket {sock} in {SOCKET_TIMEOUT:g} s "
                              f"(log: {logfile})")
        time.sleep(0.02)


def stop(instance_dir: Path) -> None:
    """Stop every daemon of the instance (and the child each forks for its sandbox); remove their files."""
    for path in sorted(instance_dir.glob("virtiofsd-*.pid")):
        status = pidfile.read(path, expect="virtiofsd", owner=instance_dir)
        if status.reason:
            log.warning("%s", status.reason)
        proc = status.process
        if proc is not None:
            import psutil

            try:
                children = proc.children(recursive=True)
            except psutil.Error:
                children = []
            processes.terminate(proc, STOP_TIMEOUT)
            for child in children:
                processes.kill(child)
        pidfile.remove(path)
    for sock in instance_dir.glob("virtiofsd-*.sock"):
        sock.unlink(missing_ok=True)
