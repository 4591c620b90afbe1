"""``create_disk`` for vz: turn the downloaded ``image`` into ``disk`` (raw or ASIF) of the configured size.

As Lima's ``driverutil.EnsureDisk`` and its native image utilities:

- nothing to do when ``disk`` exists;
- an ISO 9660 ``image`` becomes ``iso`` and an empty ``disk`` of the
  configured size is created (the rename is undone if that fails);
- otherwise ``disk`` is made from ``image`` at the configured size (or the
  image's, when larger) and ``image`` is removed:

  - raw: a raw image is renamed (mode 0644), anything else converted with
    ``qemu-img convert -O raw``; then the file is grown, sparse, to the size;
  - ASIF (macOS 26): ``diskutil`` only reads Apple's own image formats, so a
    qcow2 (or VMDK, ...) image is first converted to raw with ``qemu-img``;
    a blank ASIF image of the size is made with ``diskutil image create
    blank``, attached without mounting (``diskutil image attach
    --noMount``), the raw data written to the device it shows (zero blocks
    skipped, the image stays sparse), and detached (``hdiutil detach``).
    An ASIF image is renamed and resized with ``diskutil image resize``.

Sizes are rounded up to whole 512-byte sectors: Virtualization.framework
refuses a raw disk whose size is not a multiple of 512. ``diskutil`` may
write a new image to ``<path>.asif`` when the path has no such suffix; the
file is renamed to the path asked for, as Lima does. Commands are argument
lists; no shell is involved.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from lima_core import filenames
from lima_core.errors import DriverError, StartFailed
from lima_core.processes import describe_exit, tail

SECTOR = 512
COPY_CHUNK = 1 << 20
ISO9660_MAGIC = (0x8001, b"CD001")
ASIF_MAGIC = b"shdw"
#: (offset, magic, format name) of the formats qemu-img can turn into raw.
FOREIGN_FORMATS = ((0, b"QFI\xfb", "qcow2"), (0, b"KDMV", "vmdk"), (0, b"vhdxfile", "vhdx"),
                   (0x40, b"\x7f\x10\xda\xbe", "vdi"))


def round_up(size: int) -> int:
    """*size* rounded up to whole sectors."""
    return -(-size // SECTOR) * SECTOR


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def is_iso9660(path: Path) -> bool:
    offset, magic = ISO9660_MAGIC
    return _read_at(path, offset, len(magic)) == magic


def detect_format(path: Path) -> str:
    """"asif", "qcow2", "vmdk", "vhdx", "vdi", or "raw" (anything not recognised)."""
    head = _read_at(path, 0, 0x48)
    if head.startswith(ASIF_MAGIC):
        return "asif"
    for offset, magic, name in FOREIGN_FORMATS:
        if head[offset:offset + len(magic)] == magic:
            return name
    return "raw"


def _run(args: list[str], what: str) -> str:
    if shutil.which(args[0]) is None:
        raise DriverError(f"{what} needs `{args[0]}`, which is not on PATH")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = tail(proc.stderr or proc.stdout, 1)
        raise DriverError(f"{what} failed: `{' '.join(args)}` {describe_exit(proc.returncode)}"
                          + (f": {detail}" if detail else ""))
    return proc.stdout


def grow(path: Path, size: int) -> None:
    """Extend the raw file at *path* (sparse) to *size*, rounded up to whole sectors; never shrink it."""
    target = round_up(max(size, path.stat().st_size))
    if target != path.stat().st_size:
        os.truncate(path, target)


def new_asif(target: Path, size: int) -> None:
    """A blank ASIF image of *size* bytes at exactly *target*."""
    _run(["diskutil", "image", "create", "blank", "--fs", "none", "--format", "ASIF", "--size", str(round_up(size)),
          str(target)], f"creating the ASIF disk {target}")
    suffixed = target.with_name(target.name + ".asif")
    if not target.exists() and suffixed.exists():  # diskutil adds the suffix it expects
        suffixed.rename(target)
    if not target.exists():
        raise DriverError(f"`diskutil image create blank` reported success but {target} does not exist")


def create_empty(target: Path, size: int, fmt: str) -> None:
    """An empty disk of *size* bytes: a sparse file (raw) or a blank ASIF image."""
    if fmt == "asif":
        new_asif(target, size)
        return
    with open(target, "xb") as f:
        f.truncate(round_up(size))


def _copy_sparse(source: Path, device: str) -> None:
    """Write *source* to *device* block by block, leaving all-zero blocks unwritten."""
    fd = os.open(device, os.O_WRONLY)
    try:
        with open(source, "rb") as src:
            offset = 0
            while chunk := src.read(COPY_CHUNK):
                if chunk.count(0) != len(chunk):
                    os.pwrite(fd, chunk, offset)
                offset += len(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_to_asif(raw: Path, target: Path, size: int) -> None:
    """A new ASIF image at *target* holding the raw disk *raw*, of *size* (or *raw*'s size when larger)."""
    new_asif(target, max(size, raw.stat().st_size))
    out = _run(["diskutil", "image", "attach", "--noMount", str(target)], f"attaching {target.name}")
    device = out.strip().splitlines()[0].split()[0] if out.strip() else ""
    if not device:
        raise DriverError(f"`diskutil image attach --noMount {target}` did not name the device it attached")
    try:
        _copy_sparse(raw, device)
    finally:
        _run(["hdiutil", "detach", device], f"detaching {device} ({target.name})")


def check_not_in_use(path: Path) -> None:
    """StartFailed when another process holds *path* locked, as the framework locks the disks of a running VM.

    Virtualization.framework waits at start for a disk image another VM holds
    rather than failing; asking first turns that into one clear error.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StartFailed(f"{path} is in use by another process (another VM has it attached); stop that VM "
                          "first") from None
    finally:
        os.close(fd)


def _to_raw(image: Path, out: Path) -> None:
    _run(["qemu-img", "convert", "-O", "raw", str(image), str(out)], f"converting {image.name} to raw")


def _discard(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def ensure_disk(instance_dir: Path, size: int, fmt: str) -> None:
    """Make ``disk`` from ``image`` as described in the module docstring."""
    disk = instance_dir / filenames.DISK
    image = instance_dir / filenames.IMAGE
    if disk.exists():
        return
    if not image.exists():
        raise DriverError(f"cannot create {disk}: the image was not downloaded to {image}")
    if is_iso9660(image):
        iso = instance_dir / filenames.ISO
        image.rename(iso)
        try:
            create_empty(disk, size, fmt)
        except BaseException:
            _discard(disk, disk.with_name(disk.name + ".asif"))
            iso.rename(image)
            raise
        return
    source_format = detect_format(image)
    if source_format == "asif":
        if fmt != "asif":
            raise DriverError(f"{image} is an ASIF image; vz cannot turn it into a raw disk (set "
                              "vmOpts.vz.diskImageFormat: asif, or use a raw or qcow2 image)")
        image.rename(disk)
        if size > disk.stat().st_size:
            _run(["diskutil", "image", "resize", "--size", str(round_up(size)), str(disk)], f"resizing {disk.name}")
        return
    if fmt == "raw" and source_format == "raw":
        image.rename(disk)
        os.chmod(disk, 0o644)
        grow(disk, size)
        return
    raw_tmp = disk.with_name(disk.name + ".raw.tmp")
    asif_tmp = disk.with_name(disk.name + ".tmp.asif")
    _discard(raw_tmp, asif_tmp)
    try:
        raw = image
        if source_format != "raw":
            _to_raw(image, raw_tmp)
            raw = raw_tmp
        if fmt == "asif":
            raw_to_asif(raw, asif_tmp, size)
            os.replace(asif_tmp, disk)
        else:
            grow(raw_tmp, size)
            os.chmod(raw_tmp, 0o644)
            os.replace(raw_tmp, disk)
    except BaseException:
        _discard(raw_tmp, asif_tmp)
        raise
    _discard(raw_tmp)
    image.unlink()
