"""The QEMU command line and the accelerator choice, without booting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from lima_core.errors import ConfigError
from lima_core.probecache import ProbeCache

from lima_driver_microvm import accel, cmdline


def plan(**over: object) -> cmdline.Plan:
    d = Path("/i")
    fields = dict(qemu="qemu-system-x86_64", accel="tcg", cpus=2, memory_mib=512, kernel=d / "kernel",
                  append="console=ttyS0", initrd=d / "initrd", disk=d / "disk", disk_format="qcow2",
                  cidata=d / "cidata.iso", ssh_port=60022, mac="52:55:55:01:02:03", qmp_sock=d / "qmp.sock",
                  serial_sock=d / "serial.sock", serial_log=d / "serial.log", pid_file=d / "microvm.pid", name="i")
    fields.update(over)
    return cmdline.Plan(**fields)  # type: ignore[arg-type]


def after(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_microvm_machine_with_virtio_mmio_devices_only() -> None:
    args = cmdline.build(plan())
    assert after(args, "-M") == ["microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,rtc=on"]
    assert after(args, "-accel") == ["tcg"] and after(args, "-cpu") == ["max"]
    assert after(args, "-kernel") == ["/i/kernel"] and after(args, "-initrd") == ["/i/initrd"]
    devices = after(args, "-device")
    assert devices == ["virtio-blk-device,drive=disk0", "virtio-blk-device,drive=cidata",
                       "virtio-net-device,netdev=net0,mac=52:55:55:01:02:03", "virtio-rng-device"]
    assert not any("pci" in d for d in devices)
    assert "file=/i/cidata.iso,if=none,id=cidata,format=raw,readonly=on" in after(args, "-drive")
    assert after(args, "-netdev") == ["user,id=net0,net=192.168.5.0/24,dhcpstart=192.168.5.15,"
                                      "hostfwd=tcp:127.0.0.1:60022-:22"]
    assert after(args, "-pidfile") == ["/i/microvm.pid"]
    assert "-no-reboot" in args and "-nodefaults" in args


def test_kvm_uses_the_host_cpu() -> None:
    args = cmdline.build(plan(accel="kvm"))
    assert after(args, "-accel") == ["kvm"] and after(args, "-cpu") == ["host"]


def test_shares_are_virtio_9p_devices() -> None:
    args = cmdline.build(plan(shares=(cmdline.Share("lima-abc", "/home/u", False),
                                      cmdline.Share("lima-def", "/tmp/lima", True))))
    assert after(args, "-fsdev") == ["local,id=fs0,path=/home/u,security_model=none,readonly=on",
                                     "local,id=fs1,path=/tmp/lima,security_model=none"]
    assert "virtio-9p-device,fsdev=fs1,mount_tag=lima-def" in after(args, "-device")


@pytest.mark.parametrize(("base", "acc", "want"), [
    ("quiet panic=-1", "tcg", "quiet panic=-1 console=ttyS0 tsc_early_khz=1234"),
    ("console=hvc0", "kvm", "console=hvc0"),
    ("console=ttyS0 tsc_early_khz=99", "tcg", "console=ttyS0 tsc_early_khz=99"),
])
def test_kernel_command_line(base: str, acc: str, want: str) -> None:
    assert cmdline.kernel_append(base, acc, 1234) == want


def test_accel_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(accel.ENV, raising=False)
    assert accel.requested({}) == "auto"
    assert accel.requested({"accel": "KVM"}) == "kvm"
    monkeypatch.setenv(accel.ENV, "tcg")
    assert accel.requested({"accel": "kvm"}) == "tcg"  # the environment wins
    monkeypatch.setenv(accel.ENV, "hvf")
    with pytest.raises(ConfigError, match="not one of auto, kvm, tcg"):
        accel.requested({})


def test_tcg_is_said_not_assumed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert accel.choose("qemu", tmp_path / "k", "tcg") == accel.Accel("tcg", "asked for TCG")
    monkeypatch.setattr(accel, "KVM_DEVICE", str(tmp_path / "no-kvm"))
    got = accel.choose("qemu", tmp_path / "k", "auto")
    assert got.name == "tcg" and "missing or not accessible" in got.reason
    with pytest.raises(ConfigError, match="KVM was asked for"):
        accel.choose("qemu", tmp_path / "k", "kvm")


def test_host_tsc_khz_is_positive() -> None:
    assert accel.host_tsc_khz() > 0


def test_kvm_verdict_is_probed_once_per_binary_and_boot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kvm = tmp_path / "kvm"
    kvm.touch()
    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_text("")
    monkeypatch.setattr(accel, "KVM_DEVICE", str(kvm))
    monkeypatch.setattr(accel.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(accel, "CACHE", ProbeCache("microvm-accel-probe.json", directory=tmp_path / "cache"))
    probes: list[str] = []

    def probe(exe: str, kernel: Path) -> accel.Accel:
        probes.append(exe)
        return accel.Accel("kvm", "KVM booted the kernel in 0.1 s")

    monkeypatch.setattr(accel, "probe", probe)
    assert accel.choose(str(qemu), tmp_path / "k", "auto") == accel.Accel("kvm", "KVM booted the kernel in 0.1 s")
    assert accel.choose(str(qemu), tmp_path / "k", "auto").reason.endswith("(cached)")
    assert len(probes) == 1
    qemu.write_text("# a new build\n")
    accel.choose(str(qemu), tmp_path / "k", "auto")
    assert len(probes) == 2
