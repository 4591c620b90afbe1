"""A suspended VM: QEMU's migration stream in the instance directory, and how to run it again.

**Why a migration to a file, not ``savevm``.** ``savevm`` writes the state
into the qcow2 disk as an internal snapshot, and ``-loadvm`` brings it back
about as fast. But the state then lives in the disk: the snapshot shows in
``lima snapshot list`` and may be applied or deleted there; the space it takes
stays in the qcow2 file after the snapshot is deleted; the disk keeps a
reference to every cluster the snapshot holds, so each write after the resume
copies a cluster until the snapshot goes; and every writable drive must be
qcow2 (a raw or vmdk boot disk cannot suspend). A migration stream written to
its own file (``qemu.savedstate``) needs none of that: any disk format, the
snapshots untouched, and its space back as soon as the resumed VM runs (the
file is deleted then); docs/benchmarks.md (B10) has the times and sizes. The
price is that the disk must not change while the VM is saved, since nothing
reverts it: the disk's size and modification time are recorded, and a changed
disk is refused at resume (as are snapshot commands while suspended, see the
driver).

**Save** (:func:`save`): on one QMP connection the VM is paused (``stop``,
so the stream is written in one pass with no dirty pages to chase), the
bandwidth limit lifted (QEMU 7.2 caps a migration at 128 MiB/s), the file's
descriptor passed to QEMU (``getfd``) and ``migrate`` to ``fd:``. Not
``exec:cat > file``: QEMU ends the helper process when the stream ends,
SIGTERM first, and a ``cat`` still writing its last buffer would leave a short
file. Once ``query-migrate`` says completed, the file is synced, QEMU quits,
and the record of what the resume needs is written last
(``qemu.savedstate.json``): the exact command line QEMU ran with, its version,
the disk's and cidata's identity, the stream's size. A failed save resumes the
paused VM (``cont``), which runs on as before.

**Resume** (:func:`restore`): the driver starts the same command line (the
SSH forward may move to another port) with ``-incoming defer``; here the
version is compared (a stream only loads into the QEMU that wrote it), the
file is passed the same way and ``migrate-incoming`` reads it. QEMU loads it
paused (the VM was paused when saved), and ``cont`` runs it. Only then are
the files removed: until the VM runs, a failure leaves both as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from lima_core import atomicfile, filenames, processes, suspended
from lima_core.errors import DriverError, StartFailed

from . import qmp

log = logging.getLogger(__name__)

FORMAT = 1
#: no limit in practice (bytes per second)
MAX_BANDWIDTH = 1 << 40
#: how long writing or reading the stream may take
TRANSFER_TIMEOUT = 600.0
#: how long QEMU gets to exit after a save
QUIT_TIMEOUT = 30.0
POLL_INTERVAL = 0.01
SAVE_FD = "lima-suspend"
RESTORE_FD = "lima-resume"


@dataclasses.dataclass(frozen=True)
class Saved:
    """``qemu.savedstate.json``: what resuming the stream needs."""

    #: the QEMU executable and its arguments, as the VM ran
    argv: list[str]
    #: "major.minor.micro" of that QEMU
    version: str
    #: (size, mtime_ns) of ``disk`` and ``cidata.iso`` after QEMU quit
    files: dict[str, list[int]]
    state_bytes: int
    saved_at: str

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "argv": self.argv, "qemuVersion": self.version, "files": self.files,
                "stateBytes": self.state_bytes, "savedAt": self.saved_at}


def state_path(inst_dir: Path) -> Path:
    return inst_dir / filenames.QEMU_SAVED_STATE


def info_path(inst_dir: Path) -> Path:
    return inst_dir / filenames.QEMU_SAVED_STATE_INFO


def read(inst_dir: Path) -> Saved | None:
    """The saved state's record, or None when there is no complete saved state.

    :raises StartFailed: the record exists but cannot be read.
    """
    path = info_path(inst_dir)
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {FORMAT}")
        saved = Saved(argv=[str(a) for a in data["argv"]], version=str(data["qemuVersion"]),
                      files={str(k): [int(x) for x in v] for k, v in data["files"].items()},
                      state_bytes=int(data["stateBytes"]), saved_at=str(data["savedAt"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StartFailed(f"the saved state's record {path} cannot be read ({exc})") from None
    if not state_path(inst_dir).exists():
        return None
    return saved


def exists(inst_dir: Path) -> bool:
    return info_path(inst_dir).exists() or state_path(inst_dir).exists()


def under_way(inst_dir: Path) -> bool:
    """A save is being written, or a saved state is there to be loaded (or being loaded)."""
    return exists(inst_dir) or _tmp(inst_dir).exists()


def discard(inst_dir: Path) -> bool:
    """Remove the saved state (record first: a stream without one is never resumed); True if there was one."""
    found = False
    for path in (info_path(inst_dir), state_path(inst_dir), _tmp(inst_dir)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            found = True
    return found


def _tmp(inst_dir: Path) -> Path:
    return inst_dir / (filenames.QEMU_SAVED_STATE + filenames.TMP_FILE_SUFFIXES[-1])


def _version(sock: Path) -> str:
    v = qmp.execute(sock, "query-version")["qemu"]
    return f"{v['major']}.{v['minor']}.{v['micro']}"


def _wait_migration(sock: Path, alive: Any, what: str) -> None:
    """Poll ``query-migrate`` until it completes. :raises DriverError: it failed, QEMU died, or it took too long."""
    deadline = time.monotonic() + TRANSFER_TIMEOUT
    while True:
        if not alive():
            raise DriverError(f"QEMU exited while {what}")
        try:
            status = qmp.execute(sock, "query-migrate")
        except qmp.QMPUnavailable:
            if not alive():
                raise DriverError(f"QEMU exited while {what}") from None
            raise
        state = status.get("status")
        if state == "completed":
            return
        if state in ("failed", "cancelled"):
            raise DriverError(f"{what} failed: {status.get('error-desc') or state}")
        if time.monotonic() > deadline:
            raise DriverError(f"{what} did not finish within {TRANSFER_TIMEOUT:g} s")
        time.sleep(POLL_INTERVAL)


def save(sock: Path, inst_dir: Path, proc: Any) -> int:
    """Write the running VM (QEMU process *proc*, a psutil.Process) to ``qemu.savedstate`` and end QEMU.

    :returns: the stream's size in bytes.
    :raises DriverError: QEMU cannot save this VM; it then runs as before.
    """
    argv = proc.cmdline()
    try:
        blocked = qmp.execute(sock, "query-migrate").get("blocked-reasons")
        if blocked:
            raise DriverError(f"QEMU cannot save this VM: {'; '.join(blocked)}")
        version = _version(sock)
    except (qmp.QMPUnavailable, qmp.QMPCommandError) as exc:
        raise DriverError(f"cannot save the VM: {exc}") from None
    discard(inst_dir)
    tmp = _tmp(inst_dir)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            qmp.run(sock, [("migrate-set-parameters", {"max-bandwidth": MAX_BANDWIDTH}), ("stop", None),
                           ("getfd", {"fdname": SAVE_FD}), ("migrate", {"uri": f"fd:{SAVE_FD}"})], fd=fd)
            _wait_migration(sock, proc.is_running, "saving the VM")
        except (qmp.QMPUnavailable, qmp.QMPCommandError) as exc:
            raise DriverError(f"cannot save the VM: {exc}") from None
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        _run_on(sock, proc)
        raise
    os.close(fd)
    size = tmp.stat().st_size
    with contextlib.suppress(qmp.QMPUnavailable, qmp.QMPCommandError):
        qmp.execute(sock, "quit")  # QEMU may hang up before it answers
    if not processes.wait_exit(proc, QUIT_TIMEOUT):
        log.warning("QEMU did not quit within %g s after saving the VM; killing it", QUIT_TIMEOUT)
        processes.kill(proc)
    os.replace(tmp, state_path(inst_dir))
    saved = Saved(argv=argv, version=version, files=suspended.file_identity(inst_dir), state_bytes=size,
                  saved_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    atomicfile.write(info_path(inst_dir), json.dumps(saved.to_json(), indent=1) + "\n", mode=0o600, sync=True)
    return size


def _run_on(sock: Path, proc: Any) -> None:
    """After a failed save: the VM, paused for it, runs again as it was."""
    if not proc.is_running():
        return
    with contextlib.suppress(qmp.QMPUnavailable, qmp.QMPCommandError):
        if not qmp.execute(sock, "query-status").get("running"):
            qmp.execute(sock, "cont")


def check(saved: Saved, inst_dir: Path) -> None:
    """Refuse a stream whose disk or cidata changed since it was saved. :raises StartFailed: with what changed."""
    changed = suspended.changed_files(saved.files, inst_dir)
    if changed:
        raise StartFailed(f"{' and '.join(changed)} changed since the VM was saved ({saved.saved_at}); the saved "
                          "memory no longer matches it, and resuming would corrupt it")


def restore(sock: Path, inst_dir: Path, saved: Saved, alive: Any) -> None:
    """Load the stream into the QEMU listening on *sock* (started with ``-incoming defer``) and run the VM.

    :raises StartFailed: the stream could not be loaded (the files are left as they were).
    """
    try:
        version = _version(sock)
        if version != saved.version:
            raise StartFailed(f"the VM was saved by QEMU {saved.version}; this is QEMU {version}, which cannot "
                              "load its state")
        with open(state_path(inst_dir), "rb") as f:
            qmp.run(sock, [("getfd", {"fdname": RESTORE_FD}), ("migrate-incoming", {"uri": f"fd:{RESTORE_FD}"})],
                    fd=f.fileno())
            _wait_migration(sock, alive, "loading the saved state")
        qmp.execute(sock, "cont")
    except (qmp.QMPUnavailable, qmp.QMPCommandError, DriverError, OSError) as exc:
        raise StartFailed(f"cannot resume the VM: {exc}") from None
    discard(inst_dir)
