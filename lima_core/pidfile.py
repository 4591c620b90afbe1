"""Pid files that never lead us to signal the wrong process.

A pid file holds the number alone, as Lima writes it, so Lima and lima-core
can share an instance directory. When lima-core writes one it also records
the process's start time beside it (``<file>.identity``); a later reader
accepts the pid only if the live process with that number started at that
time. A pid file without that record (written by Lima, or by qemu itself) is
accepted only if the process's command line names what we expect
(``lima-driver-qemu``, ``qemu-system``); otherwise it is left alone and the
reason is given.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import psutil

from .filenames import PID_IDENTITY_SUFFIX

#: start times are compared to this many seconds (psutil rounds differently per OS)
_START_TIME_SLACK = 0.05


@dataclasses.dataclass(frozen=True)
class PidStatus:
    """What a pid file points at."""

    pid: int = 0
    #: the live process we own, or None
    process: psutil.Process | None = None
    #: why the pid was not accepted ("" when it was, or there was no file)
    reason: str = ""

    @property
    def alive(self) -> bool:
        return self.process is not None


def identity_path(path: Path) -> Path:
    return path.with_name(path.name + PID_IDENTITY_SUFFIX)


def write(path: Path, pid: int) -> None:
    """Write *pid* (the number alone) and record the process's identity beside it."""
    record = {"pid": pid}
    try:
        proc = psutil.Process(pid)
        record.update(createTime=proc.create_time(), cmdline=proc.cmdline())
    except psutil.Error:
        pass
    _atomic_write(identity_path(path), json.dumps(record) + "\n")
    _atomic_write(path, f"{pid}\n")


def remove(path: Path) -> None:
    for p in (path, identity_path(path)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def read(path: Path, expect: str | None = None, *, prune: bool = True) -> PidStatus:
    """The process *path* names, if it is alive and is the one we mean.

    :param expect: a substring the command line must contain when no
        identity record exists (e.g. ``"qemu-system"``).
    :param prune: remove the file when its process is gone.
    """
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return PidStatus()
    except OSError as exc:
        return PidStatus(reason=f"cannot read {path}: {exc.strerror}")
    try:
        pid = int(text)
        if pid <= 0:
            raise ValueError
    except ValueError:
        if prune:
            remove(path)
        return PidStatus(reason=f"{path} does not hold a process id")
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(pid)
        created = proc.create_time()
        cmdline = proc.cmdline()
    except psutil.NoSuchProcess:
        if prune:
            remove(path)
        return PidStatus(pid=pid)
    except psutil.AccessDenied:
        # Alive but not ours to inspect: never ours to signal either.
        return PidStatus(pid=pid, reason=f"process {pid} from {path.name} belongs to another user")
    record = _read_identity(path)
    if record is not None and record.get("pid") == pid and "createTime" in record:
        if abs(float(record["createTime"]) - created) <= _START_TIME_SLACK:
            return PidStatus(pid=pid, process=proc)
        if prune:
            remove(path)
        return PidStatus(pid=pid, reason=f"process {pid} from {path.name} is not the one lima started "
                                         "(the number was reused); left it alone")
    if expect is None or any(expect in part for part in cmdline):
        return PidStatus(pid=pid, process=proc)
    return PidStatus(pid=pid, reason=f"process {pid} from {path.name} is not {expect} "
                                     f"(it is {' '.join(cmdline)[:80] or 'unknown'}); left it alone")


def wait_exit(proc: psutil.Process, timeout: float | None) -> bool:
    """Wait until *proc* has exited; True if it did within *timeout* seconds.

    A process we did not spawn lingers as a zombie until its new parent reaps
    it (here, init may take a second or more); it has exited all the same,
    so a zombie counts as gone. It is never reaped here: a child's owner
    (a ``Popen.wait``) must still see its real exit status.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _read_identity(path: Path) -> dict | None:
    try:
        record = json.loads(identity_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
