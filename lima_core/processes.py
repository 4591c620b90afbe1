"""Processes lima-core and drivers start or find: ending them, waiting for their exit, saying how they ended.

A process is either a child we spawned (a ``subprocess.Popen``) or one found
from a pid file (a ``psutil.Process``, see :mod:`lima_core.pidfile`):
:func:`kill` and :func:`terminate` take either. A child is reaped when it
has been waited for here, so it leaves no zombie and keeps its status in
``returncode``; any other process is only watched (:func:`wait_exit`).

How a process ended is told in one form everywhere: :func:`describe_exit`
for its status, :func:`log_tail` (or :func:`tail` for captured text) for the
last lines it wrote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from .errors import SignalDenied

if TYPE_CHECKING:
    import psutil  # imported where used: a driver process starts faster without it

#: Seconds :func:`kill` waits, by default, for a process it sent SIGKILL to be gone.
KILL_WAIT = 10.0
#: Seconds a process lima-core waits on may stay :func:`frozen` before the wait is given up.
FROZEN_GRACE = 2.0
#: :func:`log_tail` reads at most this many bytes from the end of a log.
TAIL_BYTES = 64 << 10


def describe_exit(returncode: int) -> str:
    """How a process ended, from its ``returncode``: "exited with status 2", "was killed by SIGKILL".

    A negative code is a signal, as ``subprocess`` reports it; a signal this
    platform has no name for is given by number ("was killed by signal 70").
    """
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


def wait_exit(proc: psutil.Process, timeout: float | None) -> bool:
    """Wait until *proc* has exited; True if it did within *timeout* seconds.

    A process we did not spawn lingers as a zombie until its new parent reaps
    it (here, init may take a second or more); it has exited all the same,
    so a zombie counts as gone, and so does its pid taken by a new process.
    It is never reaped here: a child's owner (a ``Popen.wait``) must still
    see its real exit status. A process we may not inspect counts as running.
    """
    import psutil

    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:
            pass
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def frozen(proc: subprocess.Popen | psutil.Process) -> bool:
    """True while *proc* is stopped by a signal (SIGSTOP, SIGTSTP) or held by a debugger: it runs no code
    until continued, so whatever waits on it waits forever. A process that is gone is not frozen."""
    import psutil

    try:
        process = proc if isinstance(proc, psutil.Process) else psutil.Process(proc.pid)
        return process.status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


def kill(proc: subprocess.Popen | psutil.Process, timeout: float = KILL_WAIT, *, group: bool = False) -> bool:
    """Send *proc* SIGKILL and wait up to *timeout* seconds until it is gone; whether it is.

    A process that has already exited counts as gone. *group*: if *proc* leads its process group (lima-core
    starts the host agent, drivers and VMs each in a session of their own), the whole group is killed, so
    what it started in it (a wrapper's child, ssh) does not outlive it.

    :raises SignalDenied: the system does not let us signal it.
    """
    if group and hasattr(os, "killpg"):
        try:
            leads = os.getpgid(proc.pid) == proc.pid
        except OSError:
            leads = False
        if leads:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                raise SignalDenied(f"not allowed to signal process group {proc.pid}") from None
    return _signal(proc, "kill") or _wait(proc, timeout)


def terminate(proc: subprocess.Popen | psutil.Process, timeout: float, kill_timeout: float = KILL_WAIT) -> bool:
    """SIGTERM, up to *timeout* seconds to exit, then :func:`kill`; whether *proc* is gone.

    :raises SignalDenied: the system does not let us signal it.
    """
    if _signal(proc, "terminate") or _wait(proc, timeout):
        return True
    return kill(proc, kill_timeout)


def _signal(proc: subprocess.Popen | psutil.Process, how: str) -> bool:
    """Send the signal; True if the process turned out to be gone already."""
    if isinstance(proc, subprocess.Popen):
        try:
            getattr(proc, how)()  # does nothing once the child has been reaped
        except ProcessLookupError:
            return True
        except PermissionError:
            raise SignalDenied(f"not allowed to signal process {proc.pid}") from None
        return False
    import psutil

    try:
        getattr(proc, how)()
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        raise SignalDenied(f"not allowed to signal process {proc.pid}") from None
    return False


def _wait(proc: subprocess.Popen | psutil.Process, timeout: float) -> bool:
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    return wait_exit(proc, timeout)


def tail(text: str, lines: int = 5) -> str:
    """The last *lines* non-blank lines of *text*, stripped and joined with " | " (one line for a message)."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def log_tail(path: str | os.PathLike[str], start: int = 0, lines: int = 5) -> str:
    """:func:`tail` of the log at *path* from byte offset *start* (what one run appended); "" if unreadable.

    Only the last :data:`TAIL_BYTES` are read, however long the log is.
    """
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            begin = max(start, end - TAIL_BYTES)
            f.seek(begin)
            data = f.read()
    except OSError:
        return ""
    text = data.decode(errors="replace")
    if begin > start:
        text = text.partition("\n")[2]  # the first line was cut
    return tail(text, lines)
