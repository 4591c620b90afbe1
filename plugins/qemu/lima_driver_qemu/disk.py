"""Disks with ``qemu-img``: the boot disk from the image (reference §4.4), its size, offline snapshots.

:func:`ensure_disk` turns the downloaded ``image`` into ``disk``:

- ``image`` is ISO 9660: it becomes ``iso`` and ``disk`` is a new empty qcow2
  of the configured size (the rename is undone if that fails);
- otherwise it is checked with ``qemu-img info`` as Lima's
  ``AcceptableAsBaseDisk`` does (no backing file, no foreign extents or
  children) and renamed to ``disk``, unless QEMU cannot run it as a writable
  disk in the formats Lima's downloader hands over (qcow2, raw, vmdk, vhdx):
  other formats (vdi, vpc, qed, dmg, ...) are converted to qcow2.

:func:`ensure_size` grows ``disk`` to ``disk:`` and refuses to shrink it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from lima_core import atomicfile, filenames
from lima_core.errors import ConfigError, DriverError
from lima_core.processes import describe_exit
from lima_core.units import human_size

log = logging.getLogger(__name__)

QEMU_IMG = "qemu-img"
#: formats Lima's qemu driver takes as they are (Info.supportedImageFormats)
KEPT_FORMATS = ("qcow2", "raw", "vmdk", "vhdx")
#: formats Lima's AcceptableAsBaseDisk does not warn about
PLAIN_FORMATS = ("qcow2", "raw")
#: the format images in other formats are converted to
CONVERT_TO = "qcow2"
ISO9660_MAGIC_OFFSET = 0x8001
ISO9660_MAGIC = b"CD001"


def qemu_img(*args: str, what: str) -> str:
    """Run qemu-img; its stdout. :raises DriverError: it fails (with its message)."""
    try:
        proc = subprocess.run([QEMU_IMG, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except FileNotFoundError:
        raise DriverError(f"{QEMU_IMG} was not found in PATH; install QEMU's tools (e.g. qemu-utils)") from None
    if proc.returncode != 0:
        message = " ".join(line for line in proc.stderr.strip().splitlines() if line.strip())
        raise DriverError(f"{what}: {message or f'qemu-img {describe_exit(proc.returncode)}'}")
    return proc.stdout


def info(path: Path) -> dict[str, Any]:
    """``qemu-img info --output=json --force-share`` (works on a disk a running VM holds)."""
    out = qemu_img("info", "--output=json", "--force-share", str(path), what=f"cannot inspect {path}")
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise DriverError(f"cannot inspect {path}: qemu-img printed no JSON ({exc})") from None
    if not isinstance(data, dict) or not data.get("format"):
        raise DriverError(f"cannot inspect the format of {path}")
    return data


def is_iso9660(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(ISO9660_MAGIC_OFFSET)
            return f.read(len(ISO9660_MAGIC)) == ISO9660_MAGIC
    except OSError:
        return False


def acceptable_as_base_disk(data: dict[str, Any]) -> None:
    """Lima's ``AcceptableAsBaseDisk``. :raises DriverError: a backing file, extent or child elsewhere."""
    name, fmt = data.get("filename", ""), data.get("format", "")
    if fmt not in PLAIN_FORMATS:
        log.warning("%s: unsupported image format %r. The image may not boot, or may have an extra privilege to "
                    "access the host filesystem. Use with caution.", name, fmt)
    if data.get("backing-filename"):
        raise DriverError(f"{name} is not acceptable as the base disk: it has a backing file "
                          f"({data['backing-filename']!r})")
    specific = data.get("format-specific") or {}
    if specific.get("type") == "vmdk":
        for extent in (specific.get("data") or {}).get("extents") or []:
            if extent.get("filename") not in (None, name):
                raise DriverError(f"{name} is not acceptable as the base disk: it has an extent elsewhere "
                                  f"({extent.get('filename')!r})")
    for child in data.get("children") or []:
        child_name = (child.get("info") or {}).get("filename")
        if child_name not in (None, name):
            raise DriverError(f"{name} is not acceptable as the base disk: it has a child elsewhere ({child_name!r})")


def ensure_disk(instance_dir: Path, size: int) -> str:
    """Make ``disk`` from ``image`` if there is no disk yet; returns what was done (for logs and tests).

    :param size: the configured ``disk:`` in bytes (the size of an ISO's empty disk).
    """
    image, disk, iso = (instance_dir / n for n in (filenames.IMAGE, filenames.DISK, filenames.ISO))
    if disk.exists() or disk.is_symlink():
        return "kept"
    if not image.exists():
        raise DriverError(f"no {filenames.IMAGE} in {instance_dir} to make the disk from")
    if is_iso9660(image):
        os.rename(image, iso)
        try:
            qemu_img("create", "-f", "qcow2", str(disk), str(size), what=f"cannot create {disk}")
        except BaseException:
            with contextlib.suppress(OSError):
                disk.unlink()
            os.rename(iso, image)
            raise
        return "iso"
    data = info(image)
    acceptable_as_base_disk(data)
    fmt = data["format"]
    if fmt in KEPT_FORMATS:
        os.rename(image, disk)
        return "renamed"
    log.info("converting %s from %s to %s", image, fmt, CONVERT_TO)
    with atomicfile.replacing(disk, sync=True) as tmp:  # the image goes next: the disk must be on disk
        qemu_img("convert", "-f", fmt, "-O", CONVERT_TO, str(image), str(tmp),
                 what=f"cannot convert {image} from {fmt} to {CONVERT_TO}")
    image.unlink()
    return "converted"


def ensure_size(path: Path, size: int) -> str:
    """Grow *path* to *size* bytes; never shrink. Returns "grown" or "kept".

    :raises ConfigError: *size* is smaller than the disk.
    """
    data = info(path)
    current = int(data.get("virtual-size") or 0)
    if size == current or size == 0:
        return "kept"
    if size < current:
        raise ConfigError(f"disk: {human_size(size)} is smaller than the disk {path} ({human_size(current)}); "
                          f"disks can grow but never shrink: set disk: to {human_size(current)} or more")
    qemu_img("resize", "-f", data["format"], str(path), str(size), what=f"cannot resize {path}")
    log.info("grew %s from %s to %s", path, human_size(current), human_size(size))
    return "grown"


# -- snapshots of a stopped instance --------------------------------------------------------


def require_qcow2(path: Path) -> dict[str, Any]:
    """The disk's info. :raises DriverError: it is not qcow2 (nothing else has snapshots here)."""
    if not path.exists():
        raise DriverError(f"the instance has no disk ({path}); snapshots need one")
    data = info(path)
    if data["format"] != "qcow2":
        raise DriverError(f"snapshots need a qcow2 disk; {path} is {data['format']} "
                          f"(convert it with `qemu-img convert -O qcow2` while the instance is stopped)")
    return data


def snapshot_tags(data: dict[str, Any]) -> list[str]:
    return [str(s.get("name", "")) for s in data.get("snapshots") or []]


def offline_snapshot(path: Path, op: str, tag: str) -> None:
    """``qemu-img snapshot -c|-a|-d TAG disk``."""
    flag = {"create": "-c", "apply": "-a", "delete": "-d"}[op]
    qemu_img("snapshot", flag, tag, str(path), what=f"cannot {op} snapshot {tag!r}")


def offline_list(path: Path) -> str:
    """``qemu-img snapshot -l disk`` without its "Snapshot list:" heading."""
    out = qemu_img("snapshot", "-l", str(path), what="cannot list snapshots")
    return out.replace("Snapshot list:\n", "", 1)
