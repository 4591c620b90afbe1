"""Lock files in an instance directory that never bring a deleted instance back.

``filelock`` creates a lock file's missing parent directories. A command
waiting for ``instance.lock`` while ``lima delete`` removes the instance would
then recreate the directory, leaving a ghost instance behind. These locks are
``flock(2)`` on the same files (so they exclude ``filelock`` holders), and a
lock whose directory is gone is reported as such. Elsewhere (no ``fcntl``)
they fall back to ``filelock``. The host agent holds ``ha.lock`` with them
for its whole life.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not a Unix host
    fcntl = None  # type: ignore[assignment]

POLL_INTERVAL = 0.05


class Gone(Exception):
    """The lock file's directory no longer exists (the instance was deleted)."""


class Busy(Exception):
    """Another process held the lock for the whole timeout."""


def held(path: Path) -> bool:
    """True while some process holds the lock on *path*; never creates anything."""
    if fcntl is None:
        return _filelock_held(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def holders(path: Path) -> list[int]:
    """The pids holding a ``flock`` on *path*, from ``/proc/locks`` (Linux); [] where that cannot be told.

    For a lock whose holder is not known otherwise (its pid file is gone or
    garbled). The answer may include a process that only tests the lock.
    """
    try:
        st = os.stat(path)
        with open("/proc/locks") as f:
            table = f.read()
    except OSError:
        return []
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 00:2a:1234 0 EOF"; a waiter's line has "->" after the number
        if "->" in fields[:2] or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5] == where and fields[4].isdigit():
            pids.append(int(fields[4]))
    return pids


@contextlib.contextmanager
def exclusive(path: Path, timeout: float) -> Iterator[None]:
    """Hold the lock on *path* (creating the file, not its directory).

    :raises Busy: still held by another process after *timeout* seconds.
    :raises Gone: the directory is gone, before or while waiting.
    """
    if fcntl is None:
        with _filelock_exclusive(path, timeout):
            yield
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            raise Gone(str(path.parent)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise Busy(str(path)) from None
            time.sleep(POLL_INTERVAL)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # removed (with its directory?) while we waited: look again
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _filelock_held(path: Path) -> bool:
    import filelock

    if not path.parent.is_dir():
        return False
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return True
    lock.release()
    return False


@contextlib.contextmanager
def _filelock_exclusive(path: Path, timeout: float) -> Iterator[None]:
    import filelock

    if not path.parent.is_dir():
        raise Gone(str(path.parent))
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise Busy(str(path)) from None
    try:
        yield
    finally:
        lock.release()
