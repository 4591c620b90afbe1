"""Lima's additional disks: ``$LIMA_HOME/_disks/<name>/datadisk``, locked to one instance at a time.

The lock is Lima's: ``_disks/<name>/in_use_by``, a symlink to the instance directory that
uses the disk, made when the driver attaches it (the qemu driver, as it builds QEMU's
command line) and removed when the instance stops (the host agent, ``lima stop -f``,
``lima delete``) or by ``lima disk unlock``. Making the symlink is one atomic step, so two
instances starting at once cannot both hold a disk. A lock whose instance directory no
longer exists is stale, and is taken over.

A disk is qcow2 (made by ``qemu-img``) or raw (a sparse file); ``lima disk create --format``
chooses, and a qcow2 disk needs ``qemu-img``. In the guest, disk *i* of ``additionalDisks``
is ``/dev/vd<b+i>``, formatted on first use and mounted at ``/mnt/lima-<name>``
(``cidata/scripts/boot.Linux/05-lima-disks.sh``).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from . import dirnames, filenames, imageformat
from .errors import LimaError

log = logging.getLogger("lima_core")

DATADISK = filenames.DATADISK
IN_USE_BY = filenames.DISK_IN_USE_BY
FORMATS = ("qcow2", "raw")
QEMU_IMG = "qemu-img"
_NAME = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")


class DiskError(LimaError):
    """A disk does not exist, is in use, or cannot be made, changed or removed."""


@dataclasses.dataclass
class Disk:
    name: str
    dir: Path
    size: int
    format: str
    #: the instance whose directory ``in_use_by`` points to ("" when unlocked)
    instance: str = ""
    instance_dir: str = ""

    def to_json(self) -> dict[str, object]:
        """Lima's ``limactl disk list --json`` keys."""
        return {"name": self.name, "size": self.size, "format": self.format, "dir": str(self.dir),
                "instance": self.instance, "instanceDir": self.instance_dir,
                "mountPoint": mount_point(self.name)}


def mount_point(name: str) -> str:
    return f"/mnt/lima-{name}"


def validate_name(name: str) -> None:
    if not _NAME.fullmatch(name or "") or len(name) > 76:
        raise DiskError(f"invalid disk name {name!r}: use letters and digits, joined by single '.', '_' or '-' "
                        "(for example 'data-1')")


def disks_dir() -> Path:
    return dirnames.lima_home() / filenames.DISKS_DIR


def disk_dir(name: str) -> Path:
    validate_name(name)
    return disks_dir() / name


def names() -> list[str]:
    try:
        return sorted(p.name for p in disks_dir().iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []


def datadisk(name: str) -> Path:
    return disk_dir(name) / DATADISK


def inspect(name: str) -> Disk:
    """The disk *name*; DiskError when it does not exist."""
    d = disk_dir(name)
    path = d / DATADISK
    if not path.exists():
        raise DiskError(f"disk {name!r} does not exist; run `lima disk list` to see the disks, or "
                        f"`lima disk create {name} --size SIZE` to make it")
    fmt = imageformat.detect(path)
    size = path.stat().st_size if fmt == "raw" else _virtual_size(path)
    owner_dir = _owner_dir(d)
    return Disk(name, d, size, fmt, Path(owner_dir).name if owner_dir else "", owner_dir or "")


def _virtual_size(path: Path) -> int:
    out = _qemu_img("info", "--output=json", "--force-share", str(path), what=f"cannot read the size of {path}")
    try:
        return int(json.loads(out)["virtual-size"])
    except (ValueError, KeyError, TypeError):
        raise DiskError(f"cannot read the size of {path}: qemu-img gave no virtual-size") from None


def _owner_dir(d: Path) -> str | None:
    try:
        return os.readlink(d / IN_USE_BY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # not a symlink: not Lima's lock
            raise DiskError(f"{d / IN_USE_BY} is not a symlink; remove it (`lima disk unlock`)") from None
        raise


def _qemu_img(*args: str, what: str) -> str:
    if shutil.which(QEMU_IMG) is None:
        raise DiskError(f"{what}: {QEMU_IMG} was not found on PATH (install QEMU's tools, e.g. apt-get install "
                        "qemu-utils)")
    proc = subprocess.run([QEMU_IMG, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = " ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
        raise DiskError(f"{what}: {detail or f'{QEMU_IMG} exited with status {proc.returncode}'}")
    return proc.stdout


# -- create, import, resize, delete -----------------------------------------------------------------


def _new_dir(name: str) -> Path:
    d = disk_dir(name)
    disks_dir().mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        raise DiskError(f"disk {name!r} already exists ({d})") from None
    return d


def create(name: str, size: int, fmt: str = "qcow2") -> Disk:
    """A new empty disk of *size* bytes; on failure nothing is left behind."""
    if fmt not in FORMATS:
        raise DiskError(f"disk format {fmt!r} is not supported; use qcow2 or raw")
    if size <= 0:
        raise DiskError("the disk size must be positive, e.g. --size 10GiB")
    d = _new_dir(name)
    try:
        if fmt == "qcow2":
            _qemu_img("create", "-q", "-f", "qcow2", str(d / DATADISK), str(size), what=f"cannot create disk {name!r}")
        else:
            with open(d / DATADISK, "wb") as f:
                f.truncate(size)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    return inspect(name)


def import_(name: str, source: Path) -> Disk:
    """A new disk holding a copy of *source* (qcow2 or raw); on failure nothing is left behind."""
    from .clone import copy_sparse

    if not source.is_file():
        raise DiskError(f"{source} is not a file")
    fmt = imageformat.detect(source)
    if fmt not in FORMATS:
        raise DiskError(f"{source} is a {fmt} image; `lima disk import` takes qcow2 or raw (convert it with "
                        f"`qemu-img convert -O qcow2 {source} out.qcow2`)")
    if fmt == "qcow2":
        backing = json.loads(_qemu_img("info", "--output=json", str(source), what=f"cannot read {source}")) \
            .get("backing-filename")
        if backing:
            raise DiskError(f"{source} has a backing file ({backing}); flatten it first (`qemu-img convert`)")
    d = _new_dir(name)
    try:
        copy_sparse(source, d / DATADISK)
        os.chmod(d / DATADISK, 0o600)
    except OSError as exc:
        shutil.rmtree(d, ignore_errors=True)
        raise DiskError(f"cannot import {source} as disk {name!r}: {exc.strerror}") from None
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    return inspect(name)


def resize(name: str, size: int) -> Disk:
    """Grow the disk to *size* bytes (no shrinking; not while its instance runs)."""
    disk = inspect(name)
    if size < disk.size:
        raise DiskError(f"disk {name!r} is {disk.size} bytes; shrinking to {size} is not supported")
    running = _running_owner(disk)
    if running:
        raise DiskError(f"cannot resize disk {name!r} while instance {running!r} runs; stop it first "
                        f"(`lima stop {running}`)")
    if size == disk.size:
        return disk
    if disk.format == "qcow2":
        _qemu_img("resize", "-q", "-f", "qcow2", str(disk.dir / DATADISK), str(size), what=f"cannot resize {name!r}")
    else:
        with open(disk.dir / DATADISK, "r+b") as f:
            f.truncate(size)
    return inspect(name)


def delete(name: str, *, force: bool = False) -> bool:
    """Remove the disk; False when it was kept because an instance refers to it (without *force*)."""
    disk = inspect(name)
    if not force:
        if disk.instance and Path(disk.instance_dir).is_dir():
            raise DiskError(f"cannot delete disk {name!r}: it is in use by instance {disk.instance!r} "
                            f"(`lima disk delete -f {name}` deletes it anyway)")
        users = referred_by(name)
        if users:
            log.warning("not deleting disk %r: instance(s) %s refer to it in additionalDisks; "
                        "to delete it anyway, run `lima disk delete --force %s`", name, ", ".join(map(repr, users)),
                        name)
            return False
    shutil.rmtree(disk.dir)
    return True


def referred_by(name: str) -> list[str]:
    """The instances whose lima.yaml lists disk *name* in additionalDisks."""
    from . import store

    users = []
    for inst in store.inspect_all(dirnames.instance_names(), driver_status=False):
        cfg = inst.config
        if cfg is not None and name in [_entry_name(e) for e in cfg.additional_disks or []]:
            users.append(inst.name)
    return users


def _entry_name(entry: object) -> str | None:
    return entry.get("name") if isinstance(entry, dict) else entry if isinstance(entry, str) else None


def _running_owner(disk: Disk) -> str | None:
    from . import store
    from .limatype import STATUS_RUNNING

    if not disk.instance or not Path(disk.instance_dir).is_dir():
        return None
    if Path(disk.instance_dir).parent != dirnames.lima_home():
        return disk.instance  # another LIMA_HOME's instance: assume it may run
    inst = store.inspect(disk.instance, driver_status=False)
    return disk.instance if inst.status == STATUS_RUNNING else None


# -- the lock -----------------------------------------------------------------------------------------


def lock(name: str, inst_dir: Path) -> Path:
    """Lock disk *name* to the instance at *inst_dir* (again if it already is); its datadisk path.

    DiskError when another instance holds it."""
    d = disk_dir(name)
    path = d / DATADISK
    if not path.exists():
        raise DiskError(f"additionalDisks: disk {name!r} does not exist; create it with "
                        f"`lima disk create {name} --size SIZE`")
    target = str(inst_dir)
    for _ in range(3):
        try:
            os.symlink(target, d / IN_USE_BY)
            return path
        except FileExistsError:
            owner = _owner_dir(d)
            if owner is None:
                continue  # unlocked meanwhile
            if owner == target:
                return path
            if Path(owner).is_dir():
                raise DiskError(f"additionalDisks: disk {name!r} is in use by instance {Path(owner).name!r} "
                                f"({owner})") from None
            log.warning("disk %r was locked by %s, which no longer exists; taking it over", name, owner)
            _remove_lock(d, owner)
    raise DiskError(f"cannot lock disk {name!r}: its lock keeps changing")


def _remove_lock(d: Path, owner: str) -> None:
    """Remove ``in_use_by`` if it still points to *owner*."""
    try:
        if os.readlink(d / IN_USE_BY) == owner:
            os.unlink(d / IN_USE_BY)
    except FileNotFoundError:
        pass


def unlock(name: str, inst_dir: Path | None = None) -> bool:
    """Remove the lock of disk *name* (only *inst_dir*'s, when given); True if there was one."""
    d = disk_dir(name)
    owner = _owner_dir(d)
    if owner is None or (inst_dir is not None and owner != str(inst_dir)):
        return False
    _remove_lock(d, owner)
    return True


def unlock_all(inst_dir: Path) -> list[str]:
    """Unlock every disk locked to *inst_dir*; their names."""
    out = []
    for name in names():
        try:
            if unlock(name, inst_dir):
                out.append(name)
        except (DiskError, OSError) as exc:
            log.warning("cannot unlock disk %r: %s", name, getattr(exc, "message", exc))
    return out


def attach(entries: list[object], inst_dir: Path) -> list[Path]:
    """Lock each disk of an instance's ``additionalDisks`` (in order) and return their datadisks; if one
    cannot be locked, those locked here are unlocked again."""
    locked: list[str] = []
    paths: list[Path] = []
    try:
        for entry in entries:
            name = _entry_name(entry)
            if not name:
                raise DiskError(f"additionalDisks: {entry!r} names no disk")
            already = _owner_dir(disk_dir(name)) == str(inst_dir)
            paths.append(lock(name, inst_dir))
            if not already:
                locked.append(name)
    except BaseException:
        for name in locked:
            unlock(name, inst_dir)
        raise
    return paths
