"""Host side of external driver processes: find, spawn, wait for, and stop them.

One server per (instance, driver): ``<inst-dir>/<name>.drv.sock``. A server
whose socket answers is reused, one still starting is waited for; otherwise
``<path> --inst-dir <dir>`` is spawned in its own session (it outlives the spawner, as in Lima), with stderr
appended to ``driver.stderr.log`` and its pid written to ``<name>.drv.pid``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from .. import filenames, pidfile, processes
from ..errors import DriverProcessError

#: How long a spawned driver has to create its socket (Lima: 10 s).
READY_TIMEOUT = 10.0
#: Graceful stop: SIGTERM, then SIGKILL after this long (Lima: 10 s).
STOP_TIMEOUT = 10.0
#: How often to look for the socket while waiting (Lima polls every 100 ms; a look is one stat(2)
#: until the socket exists, and a driver process takes 200-300 ms to start).
POLL_INTERVAL = 0.002
#: A dial that takes longer than this means "not answering" (Lima: 2 s).
DIAL_TIMEOUT = 2.0
STDERR_TAIL_LINES = 10


@dataclasses.dataclass
class Server:
    """A running driver server for one instance."""

    name: str
    path: str
    socket: Path
    #: the child, when this process spawned it (else None: reused)
    process: subprocess.Popen | None = None
    #: a reused server's process, from its pid file (None if unknown)
    reused: psutil.Process | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log(self) -> Path:
        return self.socket.parent / filenames.EXTERNAL_DRIVER_STDERR_LOG

    def ended(self, wait: float = 1.0) -> str | None:
        """How the server process ended ("was killed by SIGKILL", "exited with status 2"), or None if it
        runs or nothing is known. Waits up to *wait* seconds: a call can fail just before the exit."""
        if self.process is not None:
            try:
                code = self.process.wait(wait)
            except subprocess.TimeoutExpired:
                return None
            return processes.describe_exit(code)
        if self.reused is not None and processes.wait_exit(self.reused, wait):
            return "exited"
        return None


def socket_path(instance_dir: Path, name: str) -> Path:
    return instance_dir / filenames.driver_socket(name)


def answers(sock: Path, timeout: float = DIAL_TIMEOUT) -> bool:
    """True if something accepts connections on unix socket *sock*."""
    if not sock.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(sock))
        except OSError:
            return False
    return True


def ensure_server(path: str, name: str, instance_dir: Path, timeout: float = READY_TIMEOUT) -> Server:
    """Reuse the instance's server for *name*, or spawn one and wait for its socket.

    A server still starting (its pid file names a live driver process of this
    instance, spawned by :func:`launch` or by another command) is waited for,
    not duplicated; one that does not answer within *timeout* is stopped, and
    one that exited is replaced.
    """
    sock = socket_path(instance_dir, name)
    pid_path = instance_dir / filenames.driver_pid_file(name)
    if answers(sock):
        return Server(name, path, sock, reused=server_pid(instance_dir, name, prune=False).process)
    starting = server_pid(instance_dir, name).process
    if starting is not None:
        if _wait_socket(sock, timeout, alive=lambda: _running(starting)):
            return Server(name, path, sock, reused=starting)
        if _running(starting):
            processes.kill(starting)
            pidfile.remove(pid_path)
            raise DriverProcessError(f"external driver {name} ({path}) did not create {sock.name} within "
                                     f"{timeout:g} s; see {instance_dir / filenames.EXTERNAL_DRIVER_STDERR_LOG}")
        pidfile.remove(pid_path)  # it exited: a fresh spawn says how, or works
    return spawn(path, name, instance_dir, timeout)


def server_pid(instance_dir: Path, name: str, prune: bool = True) -> pidfile.PidStatus:
    """``<name>.drv.pid``, accepted only for the driver *name* serving this instance (see pidfile)."""
    return pidfile.read(instance_dir / filenames.driver_pid_file(name), expect=filenames.driver_executable(name, windows=False),
                        owner=instance_dir, prune=prune)


def launch(path: str, name: str, instance_dir: Path) -> None:
    """Get the driver server starting, without waiting for its socket.

    For a caller that will not talk to the driver itself: the next
    :func:`ensure_server` (in another process, usually) waits for it. Nothing
    is spawned when a server of *name* already answers or is starting.
    """
    if answers(socket_path(instance_dir, name)) or server_pid(instance_dir, name).process is not None:
        return
    _popen(path, name, instance_dir)


def _popen(path: str, name: str, instance_dir: Path) -> subprocess.Popen:
    """Spawn the driver server, recorded in its pid file before anyone can miss it (``pidfile.spawn``)."""
    instance_dir.mkdir(parents=True, exist_ok=True)
    pid_path = instance_dir / filenames.driver_pid_file(name)
    with open(instance_dir / filenames.EXTERNAL_DRIVER_STDERR_LOG, "ab") as log:
        try:
            return pidfile.spawn(pid_path, [path, "--inst-dir", str(instance_dir)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=log, start_new_session=True, close_fds=True)
        except OSError as exc:  # from running it, or from recording it (then it was killed)
            where = "" if exc.filename in (None, path) else f" ({exc.filename})"
            raise DriverProcessError(f"cannot run external driver {path}: {exc.strerror or exc}{where}") from exc


def spawn(path: str, name: str, instance_dir: Path, timeout: float = READY_TIMEOUT) -> Server:
    """Spawn the driver server and wait until its socket accepts."""
    sock = socket_path(instance_dir, name)
    log_path = instance_dir / filenames.EXTERNAL_DRIVER_STDERR_LOG
    log_start = log_path.stat().st_size if log_path.exists() else 0
    proc = _popen(path, name, instance_dir)
    pid_path = instance_dir / filenames.driver_pid_file(name)
    if _wait_socket(sock, timeout, alive=lambda: proc.poll() is None):
        return Server(name, path, sock, proc)
    code = proc.poll()
    if code is not None:
        pidfile.remove(pid_path)
        tail = processes.log_tail(log_path, log_start, STDERR_TAIL_LINES)
        raise DriverProcessError(f"external driver {name} ({path}) {processes.describe_exit(code)} before creating "
                                 f"its socket" + (f": {tail}" if tail else ""))
    processes.kill(proc)
    pidfile.remove(pid_path)
    raise DriverProcessError(f"external driver {name} ({path}) did not create {sock.name} within "
                             f"{timeout:g} s; see {log_path}")


def _running(proc: psutil.Process) -> bool:
    return not processes.wait_exit(proc, 0)  # a zombie counts as exited


def _wait_socket(sock: Path, timeout: float, alive: Callable[[], bool]) -> bool:
    """Wait until *sock* accepts; False when the process is gone (``alive()`` false) or *timeout* passed."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            return False
        if answers(sock, timeout=0.5):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def stop_servers(instance_dir: Path, force: bool = False, timeout: float = STOP_TIMEOUT) -> list[str]:
    """Stop every external driver server of the instance, whatever its name.

    Graceful: SIGTERM, wait up to *timeout*, then SIGKILL. Forced: SIGKILL.
    Only processes proven to be the driver are signalled (see pidfile). Sockets
    are removed afterwards. Returns notes about pid files left alone.

    :raises SignalDenied: a driver process may not be signalled (its pid file is kept).
    """
    notes: list[str] = []
    for pid_path in sorted(instance_dir.glob("*" + filenames.DRIVER_PID_SUFFIX)):
        status = server_pid(instance_dir, pid_path.name[: -len(filenames.DRIVER_PID_SUFFIX)])
        if status.process is not None:
            gone = processes.kill(status.process, group=True) if force else processes.terminate(status.process, timeout)
            if not gone:
                notes.append(f"driver process {status.pid} ({pid_path.name}) is still alive after SIGKILL")
                continue  # its pid file is kept: it still leads to the process
        elif status.reason:
            notes.append(status.reason)
        pidfile.remove(pid_path)
    for sock in instance_dir.glob("*" + filenames.DRIVER_SOCKET_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
    return notes
