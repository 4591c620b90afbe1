"""The QEMU command line for a microvm guest, built by a pure function from a :class:`Plan`.

microvm has no firmware, no PCI and no ACPI power-management timer: the
kernel is booted directly (``-kernel``/``-initrd``/``-append``) and every
device is virtio-mmio (``virtio-*-device``), which the guest finds through
ACPI. The guest kernel therefore needs ``virtio_mmio`` (built in, or loaded
from its initrd).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lima_core.network import SLIRP_GUEST_IP, SLIRP_NETWORK

MACHINE = "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,rtc=on"


@dataclasses.dataclass(frozen=True)
class Share:
    """One host directory shared over 9p (virtio-9p-device)."""

    tag: str
    path: str
    writable: bool
    security_model: str = "none"


@dataclasses.dataclass(frozen=True)
class Plan:
    qemu: str
    accel: str  # "kvm" or "tcg"
    cpus: int
    memory_mib: int
    kernel: Path
    append: str
    initrd: Path | None
    disk: Path | None
    disk_format: str
    cidata: Path | None
    ssh_port: int
    mac: str
    qmp_sock: Path
    serial_sock: Path
    serial_log: Path
    pid_file: Path
    name: str
    shares: tuple[Share, ...] = ()


def kernel_append(base: str, accel: str, tsc_khz: int) -> str:
    """The guest kernel's command line: the image's, plus what microvm needs.

    ``console=ttyS0``: the ISA serial port is the only console. Under TCG the
    kernel cannot measure the TSC (no PIT it can reach, no HPET, no PM timer,
    no kvmclock) and would wait forever calibrating the local APIC timer, so it
    is told the host's TSC frequency (``tsc_early_khz``), which TCG passes through.
    """
    words = base.split()
    if not any(w.startswith("console=") for w in words):
        words.append("console=ttyS0")
    if accel == "tcg" and not any(w.startswith("tsc_early_khz=") for w in words):
        words.append(f"tsc_early_khz={tsc_khz}")
    return " ".join(words)


def build(plan: Plan) -> list[str]:
    """``argv`` for QEMU; unix socket paths must be short enough (checked by the caller)."""
    cpu = "host" if plan.accel == "kvm" else "max"
    args = [plan.qemu, "-name", f"lima-{plan.name}", "-M", MACHINE, "-accel", plan.accel, "-cpu", cpu,
            "-m", str(plan.memory_mib), "-smp", str(plan.cpus),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(plan.kernel), "-append", plan.append]
    if plan.initrd is not None:
        args += ["-initrd", str(plan.initrd)]
    if plan.disk is not None:
        args += ["-drive", f"file={plan.disk},if=none,id=disk0,format={plan.disk_format},discard=on",
                 "-device", "virtio-blk-device,drive=disk0"]
    if plan.cidata is not None:
        args += ["-drive", f"file={plan.cidata},if=none,id=cidata,format=raw,readonly=on",
                 "-device", "virtio-blk-device,drive=cidata"]
    args += ["-netdev", f"user,id=net0,net={SLIRP_NETWORK},dhcpstart={SLIRP_GUEST_IP},"
                        f"hostfwd=tcp:127.0.0.1:{plan.ssh_port}-:22",
             "-device", f"virtio-net-device,netdev=net0,mac={plan.mac}",
             "-device", "virtio-rng-device"]
    for i, share in enumerate(plan.shares):
        readonly = "" if share.writable else ",readonly=on"
        args += ["-fsdev", f"local,id=fs{i},path={share.path},security_model={share.security_model}{readonly}",
                 "-device", f"virtio-9p-device,fsdev=fs{i},mount_tag={share.tag}"]
    args += ["-chardev", f"socket,id=serial0,path={plan.serial_sock},server=on,wait=off,logfile={plan.serial_log}",
             "-serial", "chardev:serial0",
             "-chardev", f"socket,id=qmp,path={plan.qmp_sock},server=on,wait=off",
             "-mon", "chardev=qmp,mode=control",
             "-pidfile", str(plan.pid_file)]
    return args
