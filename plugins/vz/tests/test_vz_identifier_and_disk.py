"""create (vz-identifier) and create_disk (image -> raw disk)."""

from __future__ import annotations

import os
import plistlib
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lima_driver_vz import disk, identifier
from lima_driver_vz.hostinfo import HostFacts
from vz_helpers import ASIF_HEADER, QCOW2_HEADER, install_disk_tools, tool_calls

from lima_core import filenames
from lima_core.errors import DriverError


def test_create_writes_the_identifier_once(make: Callable, fake: Any) -> None:
    host, inst = make()
    host.create()
    path = Path(inst.dir) / filenames.VZ_IDENTIFIER
    first = path.read_bytes()
    host.create()
    assert path.read_bytes() == first
    assert fake.Virtualization.VZGenericMachineIdentifier.alloc().initWithDataRepresentation_(first) is not None


def test_an_empty_identifier_is_regenerated(make: Callable) -> None:
    host, inst = make()
    path = Path(inst.dir) / filenames.VZ_IDENTIFIER
    path.write_bytes(b"")  # as `clone` leaves it
    host.create()
    assert path.read_bytes()


def test_without_the_framework_the_representation_is_written_directly(tmp_path: Path, fake: Any) -> None:
    data = identifier.ensure(tmp_path)
    assert isinstance(plistlib.loads(data)["ECID"], int)
    assert fake.Virtualization.VZGenericMachineIdentifier.alloc().initWithDataRepresentation_(data) is not None
    assert identifier.ensure(tmp_path) == data


def test_identifiers_differ(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert identifier.ensure(tmp_path / "a") != identifier.ensure(tmp_path / "b")


# -- create_disk ---------------------------------------------------------------------------------


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake qemu-img, diskutil and hdiutil on PATH; returns the log of their calls."""
    log = tmp_path / "tool-calls.jsonl"
    for key, value in install_disk_tools(tmp_path / "bin", log, tmp_path / "dev").items():
        monkeypatch.setenv(key, value)
    return log


def test_raw_image_becomes_the_disk_grown_to_the_configured_size(make: Callable, tools: Path) -> None:
    host, inst = make({"disk": "1GiB"})
    d = Path(inst.dir)
    (d / "image").write_bytes(b"\1" * 8000)  # not a whole number of sectors
    os.chmod(d / "image", 0o600)
    host.create_disk()
    assert not (d / "image").exists()
    data = (d / "disk").read_bytes()
    assert len(data) == 1 << 30 and data[:8000] == b"\1" * 8000 and data[8000:9000] == b"\0" * 1000
    assert (d / "disk").stat().st_blocks * 512 < 1 << 20  # grown sparse
    assert stat.S_IMODE((d / "disk").stat().st_mode) == 0o644
    host.create_disk()  # disk exists: nothing to do
    assert tool_calls(tools) == []


def test_a_raw_image_larger_than_the_disk_setting_is_kept_and_rounded_to_sectors(tmp_path: Path) -> None:
    (tmp_path / "image").write_bytes(b"\1" * 1000)
    disk.ensure_disk(tmp_path, 512, "raw")
    assert (tmp_path / "disk").stat().st_size == 1024


def test_iso_image_becomes_iso_plus_an_empty_sparse_disk(make: Callable) -> None:
    host, inst = make({"disk": "2GiB"})
    d = Path(inst.dir)
    data = bytearray(0x9000)
    data[0x8001:0x8006] = b"CD001"
    (d / "image").write_bytes(bytes(data))
    host.create_disk()
    assert (d / "iso").read_bytes() == bytes(data)
    assert (d / "disk").stat().st_size == 2 << 30
    assert (d / "disk").stat().st_blocks * 512 < 1 << 20  # sparse


def test_a_missing_image_is_an_error(make: Callable) -> None:
    host, inst = make()
    with pytest.raises(DriverError, match="the image was not downloaded"):
        host.create_disk()


def qcow2(payload: bytes) -> bytes:
    return b"QFI\xfb".ljust(QCOW2_HEADER, b"\0") + payload


def test_qcow2_is_converted_with_qemu_img_and_grown(make: Callable, tools: Path) -> None:
    host, inst = make({"disk": "1MiB"})
    d = Path(inst.dir)
    (d / "image").write_bytes(qcow2(b"guest data"))
    host.create_disk()
    assert tool_calls(tools) == [["qemu-img", "convert", "-O", "raw", str(d / "image"), str(d / "disk.raw.tmp")]]
    data = (d / "disk").read_bytes()
    assert data.startswith(b"guest data") and len(data) == 1 << 20
    assert not (d / "image").exists() and not (d / "disk.raw.tmp").exists()


def test_conversion_failure_keeps_the_image(make: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host, inst = make()
    d = Path(inst.dir)
    (d / "image").write_bytes(b"QFI\xfb" + b"\0" * 100)
    bin_dir = tmp_path / "failing"
    bin_dir.mkdir()
    (bin_dir / "qemu-img").write_text('#!/bin/sh\necho "qemu-img: Could not open" >&2\nexit 1\n')
    (bin_dir / "qemu-img").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(DriverError, match="exited with status 1: qemu-img: Could not open"):
        host.create_disk()
    assert (d / "image").exists() and not (d / "disk").exists() and not (d / "disk.raw.tmp").exists()


def test_conversion_without_qemu_img_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "image").write_bytes(b"QFI\xfb" + b"\0" * 100)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(DriverError, match="needs `qemu-img`, which is not on PATH"):
        disk.ensure_disk(tmp_path, 1 << 30, "raw")


def _asif_payload(path: Path) -> bytes:
    data = path.read_bytes()
    assert data[:4] == b"shdw"
    return data[ASIF_HEADER:]


def test_asif_from_a_raw_image_is_written_through_the_attached_device(tmp_path: Path, tools: Path) -> None:
    (tmp_path / "image").write_bytes(b"\2" * 4096)
    disk.ensure_disk(tmp_path, 1 << 20, "asif")
    calls = tool_calls(tools)
    tmp = str(tmp_path / "disk.tmp.asif")
    assert calls == [
        ["diskutil", "image", "create", "blank", "--fs", "none", "--format", "ASIF", "--size", str(1 << 20), tmp],
        ["diskutil", "image", "attach", "--noMount", tmp],
        ["hdiutil", "detach", str(tmp_path / "dev" / "disk9")]]
    payload = _asif_payload(tmp_path / "disk")
    assert payload[:4096] == b"\2" * 4096 and len(payload) == 1 << 20
    assert not (tmp_path / "image").exists()


def test_asif_from_qcow2_never_hands_diskutil_the_qcow2(tmp_path: Path, tools: Path) -> None:
    """diskutil reads Apple's image formats only: the qcow2 goes through qemu-img to raw first, as Lima reads
    it itself before writing the ASIF image."""
    (tmp_path / "image").write_bytes(qcow2(b"qcow2 guest"))
    disk.ensure_disk(tmp_path, 1 << 20, "asif")
    calls = tool_calls(tools)
    assert calls[0] == ["qemu-img", "convert", "-O", "raw", str(tmp_path / "image"), str(tmp_path / "disk.raw.tmp")]
    assert not any(str(tmp_path / "image") in call for call in calls if call[0] != "qemu-img")
    assert _asif_payload(tmp_path / "disk").startswith(b"qcow2 guest")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["disk", "tool-calls.jsonl"]


def test_asif_written_to_path_dot_asif_is_renamed(tmp_path: Path, tools: Path) -> None:
    """diskutil names a new image <path>.asif when the path lacks the suffix; the disk must be at <path>."""
    disk.create_empty(tmp_path / "blank", 5 << 20, "asif")
    assert tool_calls(tools)[0][-1] == str(tmp_path / "blank")
    assert (tmp_path / "blank").exists() and not (tmp_path / "blank.asif").exists()
    assert len(_asif_payload(tmp_path / "blank")) == 5 << 20


def test_an_iso_with_an_asif_disk(make: Callable, tools: Path) -> None:
    host, inst = make({"disk": "1MiB", "vmOpts": {"vz": {"diskImageFormat": "asif"}}},
                      facts=HostFacts("Darwin", (26, 0), "aarch64"))
    d = Path(inst.dir)
    data = bytearray(0x9000)
    data[0x8001:0x8006] = b"CD001"
    (d / "image").write_bytes(bytes(data))
    host.create_disk()
    assert (d / "iso").exists() and len(_asif_payload(d / "disk")) == 1 << 20


def test_an_asif_image_is_kept_as_asif_and_resized(tmp_path: Path, tools: Path) -> None:
    (tmp_path / "image").write_bytes(b"shdw".ljust(ASIF_HEADER, b"\0") + b"\3" * 1024)
    disk.ensure_disk(tmp_path, 1 << 20, "asif")
    assert tool_calls(tools) == [["diskutil", "image", "resize", "--size", str(1 << 20), str(tmp_path / "disk")]]
    (tmp_path / "disk").rename(tmp_path / "image")
    with pytest.raises(DriverError, match="is an ASIF image; vz cannot turn it into a raw disk"):
        disk.ensure_disk(tmp_path, 1 << 20, "raw")


@pytest.mark.parametrize("head, fmt", [(b"QFI\xfb", "qcow2"), (b"KDMV", "vmdk"), (b"vhdxfile", "vhdx"),
                                       (b"\0" * 0x40 + b"\x7f\x10\xda\xbe", "vdi"), (b"\xeb\x63\x90", "raw"), (b"shdw", "asif")])
def test_detect_format(tmp_path: Path, head: bytes, fmt: str) -> None:
    (tmp_path / "x").write_bytes(head + b"\0" * 128)
    assert disk.detect_format(tmp_path / "x") == fmt
