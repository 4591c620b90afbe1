"""Processes lima-core and drivers start or find: waiting for their exit and saying how they ended.

A process is either a child we spawned (a ``subprocess.Popen``) or one found
from a pid file (a ``psutil.Process``, see :mod:`lima_core.pidfile`).
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil  # imported where used: a driver process starts faster without it


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
