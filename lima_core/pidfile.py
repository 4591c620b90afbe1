"""Pid files that never lead us to signal the wrong process.

A pid file holds the number alone, as Lima writes it, so Lima and lima-core
can share an instance directory. When lima-core writes one it also records
the process's start time beside it (``<file>.identity``); a later reader
accepts the pid only if the live process with that number started at that
time, and only in the file it was written for (an instance directory copied
while running must not lead to the original's processes). A pid file without
that record (written by Lima, or by qemu itself) is accepted only if the
process's command line names what we expect (``lima-driver-qemu``,
``qemu-system``) and, when the caller gives one, the directory the process
serves (the instance directory: a Lima-written ``qemu.pid`` whose number now
belongs to another instance's qemu is not ours). Otherwise it is left alone
and the reason is given.

A process is never unrecorded while something could look for it:
:func:`spawn` starts it and writes its pid file under the directory's
``spawn.lock``, and ``lima stop -f`` holds that lock (:func:`no_spawns`)
while it reads pid files and kills. A forced stop that arrives while a VM
is being spawned waits the few milliseconds until it is recorded, and a
spawn that would start after the stop began waits for the stop (whose kill
of the spawner usually ends it there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import atomicfile, locks, processes, textfile
from .errors import CorruptFile, InstanceLocked, InstanceNotFound
from .filenames import PID_IDENTITY_SUFFIX, SPAWN_LOCK
from .processes import wait_exit as wait_exit  # public SDK (docs/authors.md): drivers wait on pid-file processes

if TYPE_CHECKING:
    import psutil  # imported where used: a driver process starts faster without it

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


#: how long :func:`spawn` waits for a forced stop that holds the spawn lock (it holds it while it kills)
SPAWN_LOCK_TIMEOUT = 30.0


def spawn(path: Path, argv: list[str], **popen_kwargs: Any) -> subprocess.Popen:
    """Start *argv* (``subprocess.Popen(argv, **popen_kwargs)``) and record it in pid file *path* at once.

    The start and the record happen under the spawn lock of *path*'s
    directory (see :func:`no_spawns`), so ``lima stop -f`` never misses the
    process: not between ``Popen`` and the record, nor while a program that
    writes its own pid file (QEMU's ``-pidfile``) has not written it yet.
    Open the lock-free parts (log files) before calling.

    :raises InstanceLocked: a forced stop held the lock for :data:`SPAWN_LOCK_TIMEOUT` seconds.
    :raises InstanceNotFound: the directory is gone (the instance was deleted).
    :raises OSError: from ``Popen`` (the program cannot run) or from writing the pid file (then the
        process is killed).
    """
    with _spawn_lock(path.parent):
        proc = subprocess.Popen(argv, **popen_kwargs)
        try:
            write(path, proc.pid)
        except BaseException:
            processes.kill(proc)
            raise
    return proc


@contextlib.contextmanager
def no_spawns(directory: Path, timeout: float = SPAWN_LOCK_TIMEOUT) -> Iterator[None]:
    """While held, no :func:`spawn` in *directory* starts a process, and each one started before is recorded.

    :raises InstanceLocked: another holder kept it for *timeout* seconds.
    :raises InstanceNotFound: the directory is gone.
    """
    with _spawn_lock(directory, timeout):
        yield


@contextlib.contextmanager
def _spawn_lock(directory: Path, timeout: float = SPAWN_LOCK_TIMEOUT) -> Iterator[None]:
    try:
        with locks.exclusive(directory / SPAWN_LOCK, timeout):
            yield
    except locks.Busy:
        raise InstanceLocked(f"{directory / SPAWN_LOCK} was held for {timeout:g} s (by a `lima stop -f`?); "
                             "try again") from None
    except locks.Gone:
        raise InstanceNotFound(f"{directory} does not exist (the instance was deleted)") from None


def identity_path(path: Path) -> Path:
    return path.with_name(path.name + PID_IDENTITY_SUFFIX)


def write(path: Path, pid: int) -> None:
    """Write *pid* (the number alone) and record the process's identity beside it."""
    import psutil

    record: dict[str, object] = {"pid": pid, "file": str(path.absolute())}
    try:
        proc = psutil.Process(pid)
        record.update(createTime=proc.create_time(), cmdline=proc.cmdline())
    except psutil.Error:
        pass
    atomicfile.write(identity_path(path), json.dumps(record) + "\n")
    atomicfile.write(path, f"{pid}\n")


def remove(path: Path) -> None:
    for p in (path, identity_path(path)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def read(path: Path, expect: str | None = None, *, prune: bool = True, owner: Path | None = None) -> PidStatus:
    """The process *path* names, if it is alive and is the one we mean.

    :param expect: a substring the command line must contain when no
        identity record exists (e.g. ``"qemu-system"``).
    :param owner: a directory the command line must name (as an argument or
        an option value, e.g. ``--inst-dir DIR`` or ``-pidfile DIR/qemu.pid``)
        when no identity record exists.
    :param prune: remove the file when its process is gone.

    A file that does not lead to a live process of ours (garbled: not UTF-8,
    not a number; or naming another number than was recorded) still leads to
    the process the identity record beside it names, if that one lives and
    started when recorded; the reason then says what was wrong with the file.
    """
    try:
        pid = _number(path)
    except FileNotFoundError:
        return PidStatus()
    except OSError as exc:
        return PidStatus(reason=f"cannot read {path}: {exc.strerror}")
    except CorruptFile as exc:
        status, stale = PidStatus(reason=exc.message), True
    else:
        status, stale = _check(path, pid, expect, owner)
        if status.alive:
            return status
    recorded = _recorded(path, other_than=status.pid)
    if recorded is not None:
        why = status.reason or f"process {status.pid} from {path.name} is gone"
        return PidStatus(pid=recorded.pid, process=recorded,
                         reason=f"{why}; process {recorded.pid} recorded in {identity_path(path).name} is used")
    if stale and prune:
        remove(path)
        if not status.pid:
            return PidStatus(reason=f"{status.reason}; removed it")
    return status


def _check(path: Path, pid: int, expect: str | None, owner: Path | None) -> tuple[PidStatus, bool]:
    """What *pid* from *path* is, and whether the file is stale (its process is gone, or the number reused)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(pid)
        created = proc.create_time()
        cmdline = proc.cmdline()
    except psutil.NoSuchProcess:
        return PidStatus(pid=pid), True
    except psutil.AccessDenied:
        # Alive but not ours to inspect: never ours to signal either.
        return PidStatus(pid=pid, reason=f"process {pid} from {path.name} belongs to another user"), False
    record = _read_identity(path)
    copied = ""
    if record is not None and record.get("pid") == pid and isinstance(record.get("createTime"), (int, float)):
        written_for = record.get("file")
        if isinstance(written_for, str) and not _same_path(written_for, path):
            # Copied with its directory (or the record is damaged): ours only if the command line says so.
            copied = f"{path} was copied from {written_for}: process {pid} belongs there; left it alone"
        elif abs(float(record["createTime"]) - created) <= _START_TIME_SLACK:
            return PidStatus(pid=pid, process=proc), False
        else:
            return PidStatus(pid=pid, reason=f"process {pid} from {path.name} is not the one lima started "
                                             "(the number was reused); left it alone"), True
    what = " ".join(cmdline)[:80] or "unknown"
    if expect is not None and not any(expect in part for part in cmdline):
        return PidStatus(pid=pid, reason=copied or f"process {pid} from {path.name} is not {expect} "
                                                   f"(it is {what}); left it alone"), False
    if owner is not None and not names_dir(cmdline, owner):
        return PidStatus(pid=pid, reason=copied or f"process {pid} from {path.name} does not serve {owner} "
                                                   f"(it is {what}); left it alone"), False
    if copied and expect is None and owner is None:
        return PidStatus(pid=pid, reason=copied), False
    return PidStatus(pid=pid, process=proc), False


def _number(path: Path) -> int:
    """The process id *path* holds. CorruptFile when it holds anything else."""
    text = textfile.read(path).strip()
    if not text.isdigit() or int(text) <= 0:
        raise CorruptFile(f"{path} does not hold a process id ({text[:20]!r})")
    return int(text)


def _recorded(path: Path, other_than: int) -> psutil.Process | None:
    """The live process the identity record beside *path* names (written for *path*, started when recorded),
    unless it is *other_than* (already looked at)."""
    import psutil

    record = _read_identity(path)
    if record is None or not isinstance(record.get("pid"), int) or record["pid"] in (0, other_than) \
            or not isinstance(record.get("file"), str) or not _same_path(record["file"], path):
        return None
    try:
        proc = psutil.Process(record["pid"])
        if proc.status() != psutil.STATUS_ZOMBIE \
                and abs(float(record["createTime"]) - proc.create_time()) <= _START_TIME_SLACK:
            return proc
    except (psutil.Error, KeyError, TypeError, ValueError):
        pass
    return None


def names_dir(cmdline: list[str], directory: Path) -> bool:
    """True if an argument of *cmdline* is *directory* or a path inside it, alone or as an option value."""
    forms = {str(directory), os.path.realpath(directory)}
    for part in cmdline:
        for d in forms:
            start = part.find(d)
            while start != -1:
                end = start + len(d)
                before = part[start - 1] if start else ""
                after = part[end] if end < len(part) else ""
                if before in ("", "=", ",") and after in ("", "/", ","):
                    return True
                start = part.find(d, start + 1)
    return False


def _same_path(a: str, b: Path) -> bool:
    return a == str(b.absolute()) or os.path.realpath(a) == os.path.realpath(b)


def _read_identity(path: Path) -> dict | None:
    try:
        record = json.loads(identity_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
