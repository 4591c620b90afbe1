"""create_disk with real qemu-img on tiny images: rename, ISO, conversion, grow, never shrink; offline snapshots."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest
from lima_core.errors import ConfigError, DriverError

from lima_driver_qemu import disk

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")
MiB = 1 << 20


def img(path: Path, fmt: str, size: str = "16M", *extra: str) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *extra, str(path), size], check=True)
    return path


def info(path: Path) -> dict:
    out = subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def make_iso(path: Path) -> Path:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, vol_ident="INSTALLER")
    iso.add_fp(io.BytesIO(b"hello\n"), 6, "/HELLO.TXT;1")
    iso.write(str(path))
    iso.close()
    return path


def test_raw_image_is_renamed(tmp_path: Path) -> None:
    img(tmp_path / "image", "raw")
    assert disk.ensure_disk(tmp_path, 64 * MiB) == "renamed"
    assert not (tmp_path / "image").exists()
    assert info(tmp_path / "disk")["format"] == "raw"


def test_qcow2_image_is_renamed_and_grown(tmp_path: Path) -> None:
    img(tmp_path / "image", "qcow2")
    assert disk.ensure_disk(tmp_path, 64 * MiB) == "renamed"
    assert disk.ensure_size(tmp_path / "disk", 64 * MiB) == "grown"
    assert info(tmp_path / "disk")["virtual-size"] == 64 * MiB
    assert disk.ensure_size(tmp_path / "disk", 64 * MiB) == "kept"


def test_existing_disk_is_kept(tmp_path: Path) -> None:
    img(tmp_path / "disk", "qcow2")
    img(tmp_path / "image", "raw")
    assert disk.ensure_disk(tmp_path, 64 * MiB) == "kept"
    assert (tmp_path / "image").exists()


def test_iso_image_becomes_iso_plus_an_empty_qcow2(tmp_path: Path) -> None:
    make_iso(tmp_path / "image")
    assert disk.ensure_disk(tmp_path, 32 * MiB) == "iso"
    assert disk.is_iso9660(tmp_path / "iso") and not (tmp_path / "image").exists()
    data = info(tmp_path / "disk")
    assert (data["format"], data["virtual-size"]) == ("qcow2", 32 * MiB)


def test_iso_rename_is_undone_when_the_disk_cannot_be_made(tmp_path: Path) -> None:
    make_iso(tmp_path / "image")
    with pytest.raises(DriverError, match="cannot create"):
        disk.ensure_disk(tmp_path, -1)
    assert (tmp_path / "image").exists() and not (tmp_path / "iso").exists() and not (tmp_path / "disk").exists()


def test_a_format_qemu_does_not_boot_as_is_is_converted_to_qcow2(tmp_path: Path) -> None:
    img(tmp_path / "image", "vdi")
    assert disk.ensure_disk(tmp_path, 16 * MiB) == "converted"
    assert info(tmp_path / "disk")["format"] == "qcow2"
    assert not (tmp_path / "image").exists()
    assert not list(tmp_path.glob(".disk*"))


def test_vmdk_is_kept_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img(tmp_path / "image", "vmdk")
    assert disk.ensure_disk(tmp_path, 16 * MiB) == "renamed"
    assert "unsupported image format 'vmdk'" in caplog.text


def test_image_with_a_backing_file_is_refused(tmp_path: Path) -> None:
    base = img(tmp_path / "base.qcow2", "qcow2")
    img(tmp_path / "image", "qcow2", "16M", "-b", str(base), "-F", "qcow2")
    with pytest.raises(DriverError, match="has a backing file"):
        disk.ensure_disk(tmp_path, 16 * MiB)
    assert (tmp_path / "image").exists() and not (tmp_path / "disk").exists()


def test_missing_image_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="no image"):
        disk.ensure_disk(tmp_path, 16 * MiB)


def test_disks_never_shrink(tmp_path: Path) -> None:
    img(tmp_path / "disk", "qcow2", "64M")
    with pytest.raises(ConfigError, match="smaller than the disk.*never shrink"):
        disk.ensure_size(tmp_path / "disk", 32 * MiB)
    assert info(tmp_path / "disk")["virtual-size"] == 64 * MiB


def test_raw_disk_grows(tmp_path: Path) -> None:
    img(tmp_path / "disk", "raw", "16M")
    assert disk.ensure_size(tmp_path / "disk", 48 * MiB) == "grown"
    assert (tmp_path / "disk").stat().st_size == 48 * MiB


def test_offline_snapshots(tmp_path: Path) -> None:
    d = img(tmp_path / "disk", "qcow2")
    assert disk.offline_list(d) == ""
    disk.offline_snapshot(d, "create", "s1")
    listing = disk.offline_list(d)
    assert listing.splitlines()[0].split()[:2] == ["ID", "TAG"] and "s1" in listing
    assert disk.snapshot_tags(disk.require_qcow2(d)) == ["s1"]
    disk.offline_snapshot(d, "apply", "s1")
    disk.offline_snapshot(d, "delete", "s1")
    with pytest.raises(DriverError, match="cannot apply snapshot 'nope'"):
        disk.offline_snapshot(d, "apply", "nope")


def test_snapshots_need_qcow2(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="snapshots need a qcow2 disk; .* is raw"):
        disk.require_qcow2(img(tmp_path / "disk", "raw"))
    with pytest.raises(DriverError, match="has no disk"):
        disk.require_qcow2(tmp_path / "nothing")
