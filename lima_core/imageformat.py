"""Disk image formats: telling them apart by their magic bytes, and turning one into raw.

The host uses this for ``DriverFeatures.supported_image_formats``: as Lima's
downloader does, an image a driver does not take is converted to ``raw``
before the driver's ``create_disk`` sees it (see :func:`lima_core.download.conform`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import LimaError

QEMU_IMG = "qemu-img"
ISO9660 = "iso"
#: (offset, magic, format), as ``qemu-img`` names the formats
MAGICS = (
    (0, b"QFI\xfb", "qcow2"),
    (0, b"KDMV", "vmdk"),
    (0, b"# Disk DescriptorFile", "vmdk"),
    (0, b"vhdxfile", "vhdx"),
    (0, b"conectix", "vpc"),
    (0, b"QED\x00", "qed"),
    (0, b"WithoutFreeSpace", "parallels"),
    (0, b"WithouFreSpacExt", "parallels"),
    (0x40, b"\x7f\x10\xda\xbe", "vdi"),
    (0x8001, b"CD001", ISO9660),
)


class ImageFormatError(LimaError):
    """An image is in a format the driver does not take, and cannot be converted."""


def detect(path: Path) -> str:
    """The format of the image at *path*: one of :data:`MAGICS`' names, or "raw"."""
    with open(path, "rb") as f:
        head = f.read(0x8001 + 5)
    for offset, magic, name in MAGICS:
        if head[offset:offset + len(magic)] == magic:
            return name
    return "raw"


def convert_to_raw(source: Path, dest: Path, fmt: str) -> None:
    """Write *source* (in *fmt*) to *dest* as a raw image, atomically, with ``qemu-img convert``."""
    if shutil.which(QEMU_IMG) is None:
        raise ImageFormatError(f"{source} is a {fmt} image and must be converted to raw, which needs {QEMU_IMG}; "
                               "it is not on PATH (install QEMU's tools, e.g. apt-get install qemu-utils), or "
                               "give the template an image in a format the driver takes")
    tmp = dest.with_name(f".{dest.name}.raw.tmp")
    proc = subprocess.run([QEMU_IMG, "convert", "-f", fmt, "-O", "raw", str(source), str(tmp)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        detail = " ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
        raise ImageFormatError(f"cannot convert {source} from {fmt} to raw: "
                               f"{detail or f'{QEMU_IMG} exited with status {proc.returncode}'}")
    os.replace(tmp, dest)
