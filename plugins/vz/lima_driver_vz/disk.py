"""``create_disk`` for vz: turn the downloaded ``image`` into ``disk`` (raw or ASIF).

As Lima's ``driverutil.EnsureDisk``:

- nothing to do when ``disk`` exists;
- an ISO 9660 ``image`` becomes ``iso`` and an empty ``disk`` of the
  configured size is created (the rename is undone if that fails);
- an image already in the target format is renamed to ``disk`` (mode 0644);
- anything else is converted into ``disk`` and ``image`` is removed: to raw
  with ``qemu-img convert``, to ASIF with ``diskutil image create from``.

Growing the disk to the configured size is the host's job afterwards.
Commands are argument lists; no shell is involved.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from lima_core import atomicfile, filenames
from lima_core.errors import DriverError
from lima_core.processes import describe_exit, tail

ISO9660_MAGIC = (0x8001, b"CD001")
#: (offset, magic, format name) of the formats qemu-img can turn into raw.
FOREIGN_FORMATS = ((0, b"QFI\xfb", "qcow2"), (0, b"KDMV", "vmdk"), (0, b"vhdxfile", "vhdx"),
                   (0x40, b"\x7f\x10\xda\xbe", "vdi"))


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def is_iso9660(path: Path) -> bool:
    offset, magic = ISO9660_MAGIC
    return _read_at(path, offset, len(magic)) == magic


def detect_format(path: Path) -> str:
    """"qcow2", "vmdk", "vhdx", "vdi", or "raw" (anything not recognised)."""
    head = _read_at(path, 0, 0x48)
    for offset, magic, name in FOREIGN_FORMATS:
        if head[offset:offset + len(magic)] == magic:
            return name
    return "raw"


def _run(args: list[str], what: str) -> None:
    if shutil.which(args[0]) is None:
        raise DriverError(f"{what} needs `{args[0]}`, which is not on PATH")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = tail(proc.stderr or proc.stdout, 1)
        raise DriverError(f"{what} failed: `{' '.join(args)}` {describe_exit(proc.returncode)}"
                          + (f": {detail}" if detail else ""))


def create_empty(target: Path, size: int, fmt: str) -> None:
    """An empty disk of *size* bytes: a sparse file (raw) or a blank ASIF image."""
    if fmt == "asif":
        _run(["diskutil", "image", "create", "blank", "--fs", "none", "--format", "ASIF", "--size", str(size),
              str(target)], f"creating the ASIF disk {target}")
        return
    with open(target, "xb") as f:
        f.truncate(size)


def convert(source: Path, target: Path, fmt: str) -> None:
    """Write *source* (any supported format) into *target* in format *fmt*."""
    if fmt == "asif":
        _run(["diskutil", "image", "create", "from", "--format", "ASIF", str(source), str(target)],
             f"converting {source.name} to ASIF")
        return
    _run(["qemu-img", "convert", "-O", "raw", str(source), str(target)], f"converting {source.name} to raw")


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
            with contextlib.suppress(OSError):
                disk.unlink()
            iso.rename(image)
            raise
        return
    source_format = detect_format(image)
    if fmt == "raw" and source_format == "raw":
        image.rename(disk)
        os.chmod(disk, 0o644)
        return
    with atomicfile.replacing(disk, sync=True) as tmp:  # the image goes next: the disk must be on disk
        convert(image, tmp, fmt)
    image.unlink()
