"""Choosing the accelerator: the probe firmware, the cache, the fallback to TCG, LIMA_QEMU_ACCEL."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from lima_core.errors import ValidationError

from lima_driver_qemu import _kvmprobe, accel
from lima_driver_qemu.binary import Features

QEMU = shutil.which("qemu-system-x86_64")
needs_qemu = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed")
BOTH = Features(accel_help="Accelerators supported in QEMU binary:\ntcg\nkvm\n")
TCG_ONLY = Features(accel_help="Accelerators supported in QEMU binary:\ntcg\n")


@pytest.fixture
def x86_64_linux_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Pretend to be an x86_64 Linux host whose /dev/kvm is a file we control."""
    monkeypatch.setattr(accel, "host_arch", lambda: "x86_64")
    monkeypatch.setattr(accel.sys, "platform", "linux")
    dev = tmp_path / "kvm"
    dev.write_text("")
    monkeypatch.setattr(accel, "DEV_KVM", str(dev))
    monkeypatch.setattr(accel, "_warned", set())
    return dev


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record probe calls; the probe passes unless the CPU is "broken"."""
    calls: list[tuple[str, str]] = []

    def fake(exe: str, cpu: str) -> tuple[bool, str]:
        calls.append((exe, cpu))
        return (cpu != "broken", "the probe guest hung in real mode (protected mode was never reached)")

    monkeypatch.setattr(accel, "probe_kvm", fake)
    return calls


def test_rom_layout() -> None:
    rom = _kvmprobe.rom()
    assert len(rom) == 0x10000
    assert rom[0xFFF0:0xFFF5] == b"\xea\x00\x00\x00\xf0"  # ljmp $0xf000, $0 at the reset vector
    assert _kvmprobe.EXIT_STATUS == 133


@needs_qemu
def test_probe_firmware_reaches_64_bit_mode_under_tcg() -> None:
    """The firmware itself is right: TCG runs it to the end (so a KVM that cannot is broken)."""
    assert QEMU is not None
    ok, detail = accel.probe_kvm(QEMU, "max", accel="tcg")
    assert (ok, detail) == (True, "the probe guest reached 64-bit mode")


@needs_qemu
def test_probe_reports_a_qemu_that_cannot_start() -> None:
    assert QEMU is not None
    ok, detail = accel.probe_kvm(QEMU, "no-such-cpu-model", accel="tcg")
    assert not ok
    assert "exited with status 1 before the firmware ran" in detail and "no-such-cpu-model" in detail


def test_probe_stall_is_detected(tmp_path: Path) -> None:
    """A "qemu" that prints the first mark and hangs is judged within the stall time."""
    fake = tmp_path / "qemu-system-x86_64"
    fake.write_text("#!/bin/sh\nfor a; do case $a in file:*) printf A > \"${a#file:}\";; esac; done\nexec sleep 30\n")
    fake.chmod(0o755)
    ok, detail = accel.probe_kvm(str(fake), "host", stall=0.3)
    assert (ok, detail) == (False, "the probe guest hung in real mode (protected mode was never reached)")


def test_env_forces_the_accelerator(monkeypatch: pytest.MonkeyPatch, probes: list) -> None:
    assert accel.choose("x86_64", "/q", "host", BOTH, env={"LIMA_QEMU_ACCEL": "tcg"}) == accel.Choice("tcg", "env")
    assert accel.choose("x86_64", "/q", "host", BOTH, env={"LIMA_QEMU_ACCEL": "KVM"}) == accel.Choice("kvm", "env")
    with pytest.raises(ValidationError, match="'hvf' .* is not supported by /q"):
        accel.choose("x86_64", "/q", "host", BOTH, env={"LIMA_QEMU_ACCEL": "hvf"})
    with pytest.raises(ValidationError, match="is not one of"):
        accel.choose("x86_64", "/q", "host", BOTH, env={"LIMA_QEMU_ACCEL": "fast"})
    assert probes == []


def test_non_native_arch_is_tcg(x86_64_linux_host: Path, probes: list) -> None:
    assert accel.choose("aarch64", "/q", "max", BOTH, env={}) == accel.Choice("tcg", "non-native")
    assert probes == []


def test_working_kvm_is_probed_once_then_cached(x86_64_linux_host: Path, probes: list, tmp_path: Path) -> None:
    exe = str(tmp_path / "qemu")
    Path(exe).write_text("")
    first = accel.choose("x86_64", exe, "host", BOTH, env={}, cache_dir=tmp_path / "cache")
    second = accel.choose("x86_64", exe, "host", BOTH, env={}, cache_dir=tmp_path / "cache")
    assert (first.accel, first.source, second.accel, second.source) == ("kvm", "probe", "kvm", "cache")
    assert probes == [(exe, "host")]
    accel.choose("x86_64", exe, "Skylake-Client", BOTH, env={}, cache_dir=tmp_path / "cache")
    assert len(probes) == 2  # another CPU model is another question


def test_broken_kvm_falls_back_to_tcg_with_one_warning(x86_64_linux_host: Path, probes: list, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    exe = str(tmp_path / "qemu")
    Path(exe).write_text("")
    with caplog.at_level(logging.WARNING, logger="lima_driver_qemu"):
        choices = [accel.choose("x86_64", exe, "broken", BOTH, env={}, cache_dir=tmp_path) for _ in range(2)]
    assert [c.accel for c in choices] == ["tcg", "tcg"]
    assert choices[0].source == "fallback" and "KVM cannot run a standard guest here" in choices[0].reason
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "using TCG" in warnings[0] and "LIMA_QEMU_ACCEL=kvm" in warnings[0]


def test_no_dev_kvm_or_no_kvm_in_qemu_falls_back(x86_64_linux_host: Path, probes: list) -> None:
    c = accel.choose("x86_64", "/q", "host", TCG_ONLY, env={})
    assert (c.accel, c.reason) == ("tcg", "/q was built without kvm")
    x86_64_linux_host.unlink()
    c = accel.choose("x86_64", "/q", "host", BOTH, env={})
    assert c.accel == "tcg" and "does not exist" in c.reason
    assert probes == []


def test_unreadable_cache_is_ignored(x86_64_linux_host: Path, probes: list, tmp_path: Path) -> None:
    exe = str(tmp_path / "qemu")
    Path(exe).write_text("")
    (tmp_path / accel.CACHE_FILE).write_text("{not json")
    assert accel.choose("x86_64", exe, "host", BOTH, env={}, cache_dir=tmp_path).accel == "kvm"
    assert len(probes) == 1


def test_native_accel_per_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "host_arch", lambda: "aarch64")
    assert [accel.native_accel("aarch64", p) for p in ("linux", "darwin", "win32", "netbsd10", "freebsd14")] == [
        "kvm", "hvf", "whpx", "nvmm", "tcg"]
    assert accel.native_accel("x86_64", "darwin") == "tcg"
