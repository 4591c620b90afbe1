"""Finding qemu-system-*, its version and minimums, and its features."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from lima_core.errors import ValidationError

from lima_driver_qemu import binary

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 not installed")


def fake_qemu(directory: Path, name: str = "qemu-system-x86_64", version: str = "QEMU emulator version 9.1.2") -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{version}'\necho 'Copyright (c) 2003-2024 Fabrice Bellard'\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(("text", "want"), [
    ("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright ...", (7, 2, 22)),
    ("QEMU emulator version 9.0.0\n", (9, 0, 0)),
    ("QEMU emulator version 10.1.50 (v10.1.0-1234-gdeadbeef)", (10, 1, 50)),
])
def test_parse_version(text: str, want: tuple[int, int, int]) -> None:
    assert binary.parse_version(text) == want


@pytest.mark.parametrize("text", ["", "qemu 7.2", "QEMU emulator version 7.2", "\nQEMU emulator version 7.2.0"])
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        binary.parse_version(text)


def test_minimum_versions_per_host() -> None:
    assert binary.minimum_versions("linux", "x86_64") == ((4, 0, 0), (6, 2, 0))
    assert binary.minimum_versions("darwin", "arm64") == ((8, 2, 1), (8, 2, 1))
    assert binary.minimum_versions("darwin", "x86_64") == ((7, 0, 0), (8, 2, 1))
    assert binary.minimum_versions("win32", "amd64") == ((11, 0, 0), (11, 0, 0))


def test_check_version() -> None:
    assert binary.check_version((7, 2, 0), platform="linux", machine="x86_64") == []
    assert "6.2.0 or later is recommended" in binary.check_version((5, 2, 0), platform="linux", machine="x86_64")[0]
    with pytest.raises(ValidationError, match="3.1.0 is too old, 4.0.0 or later is required"):
        binary.check_version((3, 1, 0), platform="linux", machine="x86_64")
    with pytest.raises(ValidationError, match="template requires '8.0.0'"):
        binary.check_version((7, 2, 0), "8.0.0", platform="linux", machine="x86_64")
    assert binary.check_version((8, 0, 0), "8.0.0", platform="linux", machine="x86_64") == []
    with pytest.raises(ValidationError, match="8.2.1 or later is required"):
        binary.check_version((8, 2, 0), platform="darwin", machine="arm64")


def test_executable_name_per_arch(tmp_path: Path) -> None:
    names = (("armv7l", "qemu-system-arm"), ("ppc64le", "qemu-system-ppc64"), ("aarch64", "qemu-system-aarch64"))
    for arch, exe in names:
        fake_qemu(tmp_path, exe)
        assert binary.find_executable(arch, {"PATH": str(tmp_path)}) == (str(tmp_path / exe), [])
    assert binary.env_var("armv7l") == "QEMU_SYSTEM_ARM"


def test_override_with_extra_words(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake = fake_qemu(tmp_path, "my-qemu")
    env = {"PATH": str(tmp_path), "QEMU_SYSTEM_X86_64": "my-qemu -d 'guest_errors,unimp' -D /tmp/q.log"}
    with caplog.at_level(logging.WARNING):
        exe, extra = binary.find_executable("x86_64", env)
    assert exe == str(fake)
    assert extra == ["-d", "guest_errors,unimp", "-D", "/tmp/q.log"]
    assert "supported only for debugging" in caplog.text
    assert binary.version(exe) == (9, 1, 2)


def test_override_by_absolute_path(tmp_path: Path) -> None:
    fake = fake_qemu(tmp_path, "qemu-custom")
    env = {"PATH": "/nonexistent", "QEMU_SYSTEM_X86_64": str(fake)}
    assert binary.find_executable("x86_64", env) == (str(fake), [])


def test_missing_binary_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"qemu-system-riscv64 was not found in PATH"):
        binary.find_executable("riscv64", {"PATH": str(tmp_path)})
    with pytest.raises(ValidationError, match=r"nope \(from \$QEMU_SYSTEM_X86_64\) was not found"):
        binary.find_executable("x86_64", {"PATH": str(tmp_path), "QEMU_SYSTEM_X86_64": "nope -x"})
    with pytest.raises(ValidationError, match="cannot parse"):
        binary.find_executable("x86_64", {"PATH": str(tmp_path), "QEMU_SYSTEM_X86_64": "qemu 'unterminated"})


@needs_qemu
def test_features_of_the_real_binary() -> None:
    exe, _ = binary.find_executable("x86_64")
    features = binary.features(exe, "q35")
    assert features.has_accel("tcg")
    assert features.has_cpu("max") and features.has_cpu("host") and features.has_cpu("Skylake-Client,-hle")
    assert not features.has_cpu("no-such-cpu")
    assert "user" in features.netdev_help and "q35" in features.machine_help
    assert binary.version(exe) >= (4, 0, 0)


def test_features_fail_when_accel_help_fails(tmp_path: Path) -> None:
    broken = tmp_path / "qemu-system-x86_64"
    broken.write_text("#!/bin/sh\necho boom >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(ValidationError, match="-accel help.*boom"):
        binary.features(str(broken), "q35")
