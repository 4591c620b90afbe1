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


def test_raw_image_becomes_the_disk(make: Callable) -> None:
    host, inst = make()
    d = Path(inst.dir)
    (d / "image").write_bytes(b"\0" * 8192)
    os.chmod(d / "image", 0o600)
    host.create_disk()
    assert not (d / "image").exists() and (d / "disk").read_bytes() == b"\0" * 8192
    assert stat.S_IMODE((d / "disk").stat().st_mode) == 0o644
    host.create_disk()  # disk exists: nothing to do


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


def _fake_tool(bin_dir: Path, name: str, body: str) -> Path:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(0o755)
    return tool


def test_qcow2_is_converted_with_qemu_img(make: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host, inst = make()
    d = Path(inst.dir)
    (d / "image").write_bytes(b"QFI\xfb" + b"\0" * 100)
    log = tmp_path / "args"
    # fake qemu-img: record the arguments, write the target (last argument)
    _fake_tool(tmp_path / "bin", "qemu-img", f'printf "%s\\n" "$@" > {log}\nfor a; do t=$a; done\necho raw > "$t"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    host.create_disk()
    assert log.read_text().split("\n")[:4] == ["convert", "-O", "raw", str(d / "image")]
    assert (d / "disk").read_text() == "raw\n" and not (d / "image").exists()


def test_conversion_failure_keeps_the_image(make: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host, inst = make()
    d = Path(inst.dir)
    (d / "image").write_bytes(b"QFI\xfb" + b"\0" * 100)
    _fake_tool(tmp_path / "bin", "qemu-img", 'echo "qemu-img: Could not open" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    with pytest.raises(DriverError, match="exited with status 1: qemu-img: Could not open"):
        host.create_disk()
    assert (d / "image").exists() and not (d / "disk").exists() and not (d / "disk.tmp").exists()


def test_conversion_without_qemu_img_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "image").write_bytes(b"QFI\xfb" + b"\0" * 100)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(DriverError, match="needs `qemu-img`, which is not on PATH"):
        disk.ensure_disk(tmp_path, 1 << 30, "raw")


def test_asif_uses_diskutil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "args"
    _fake_tool(tmp_path / "bin", "diskutil", f'printf "%s\\n" "$@" >> {log}\nfor a; do t=$a; done\n: > "$t"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    inst = tmp_path / "inst"
    inst.mkdir()
    (inst / "image").write_bytes(b"\0" * 512)
    disk.ensure_disk(inst, 1 << 30, "asif")
    assert log.read_text().split("\n")[:6] == ["image", "create", "from", "--format", "ASIF", str(inst / "image")]
    log.unlink()
    disk.create_empty(tmp_path / "blank", 5 << 30, "asif")
    assert log.read_text().split("\n")[:-1] == ["image", "create", "blank", "--fs", "none", "--format", "ASIF",
                                               "--size", str(5 << 30), str(tmp_path / "blank")]


@pytest.mark.parametrize("head, fmt", [(b"QFI\xfb", "qcow2"), (b"KDMV", "vmdk"), (b"vhdxfile", "vhdx"),
                                       (b"\0" * 0x40 + b"\x7f\x10\xda\xbe", "vdi"), (b"\xeb\x63\x90", "raw")])
def test_detect_format(tmp_path: Path, head: bytes, fmt: str) -> None:
    (tmp_path / "x").write_bytes(head + b"\0" * 128)
    assert disk.detect_format(tmp_path / "x") == fmt
