"""Which accelerator QEMU gets: KVM when it really runs a guest, else TCG, and why.

``/dev/kvm`` existing is not proof: some hosts (kvm-pvm) answer the KVM API but
hang a normal kernel silently at 100 % CPU. So KVM is *probed*: the
instance's own kernel is booted on a microvm with ``-accel kvm`` and must
print to the serial port within :data:`PROBE_SECONDS`. The verdict is cached
per host boot (in Lima's cache directory, ``microvm-accel-probe.json``, keyed
by the QEMU binary, the host kernel and its boot: see
:mod:`lima_core.probecache`), so only the first start pays.

``LIMA_MICROVM_ACCEL=kvm|tcg`` (or ``vmOpts.microvm.accel``) skips the probe.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from lima_core.errors import ConfigError
from lima_core.probecache import ProbeCache
from lima_core.processes import describe_exit, kill

log = logging.getLogger("lima_driver_microvm")

ENV = "LIMA_MICROVM_ACCEL"
CHOICES = ("auto", "kvm", "tcg")
PROBE_SECONDS = 4.0
KVM_DEVICE = "/dev/kvm"
#: Used when the host's TSC frequency cannot be read; only the guest clock's rate depends on it.
FALLBACK_TSC_KHZ = 2_000_000
#: KVM verdicts, one per QEMU binary and host boot
CACHE = ProbeCache("microvm-accel-probe.json", max_entries=8)


@dataclasses.dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    reason: str


def requested(vm_opts: dict) -> str:
    """auto, kvm or tcg: the environment wins over vmOpts.microvm.accel."""
    value = (os.environ.get(ENV) or str(vm_opts.get("accel") or "auto")).strip().lower()
    if value not in CHOICES:
        raise ConfigError(f"accelerator {value!r} (from {ENV} or vmOpts.microvm.accel) is not one of "
                          f"{', '.join(CHOICES)}")
    return value


def choose(qemu: str, kernel: Path, want: str) -> Accel:
    """The accelerator for a guest of the host's arch booting *kernel*."""
    if want == "tcg":
        return Accel("tcg", "asked for TCG")
    native = platform.machine().lower() in ("x86_64", "amd64")
    usable = native and os.access(KVM_DEVICE, os.R_OK | os.W_OK)
    if want == "kvm":
        if not usable:
            raise ConfigError(f"KVM was asked for, but {KVM_DEVICE} is not usable on this host"
                              + ("" if native else " (microvm guests are x86_64; this host is not)"))
        return Accel("kvm", "asked for KVM")
    if not native:
        return Accel("tcg", f"the host is {platform.machine()}, the guest x86_64")
    if not usable:
        return Accel("tcg", f"{KVM_DEVICE} is missing or not accessible")
    key = CACHE.key(qemu, boot=True)
    verdict = CACHE.get(key)
    if verdict is not None and verdict.get("accel") in ("kvm", "tcg"):
        return Accel(verdict["accel"], f"{verdict.get('reason', '')} (cached)")
    accel = probe(qemu, kernel)
    CACHE.update(key, {"accel": accel.name, "reason": accel.reason})
    return accel


def probe(qemu: str, kernel: Path, seconds: float = PROBE_SECONDS) -> Accel:
    """Boot *kernel* under KVM on a microvm; KVM works if the kernel prints within *seconds*."""
    with tempfile.TemporaryDirectory(prefix="microvm-probe-") as tmp:
        serial = Path(tmp) / "serial.log"
        args = [qemu, "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on", "-accel", "kvm", "-cpu", "host",
                "-m", "128", "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-kernel", str(kernel), "-append", "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1",
                "-serial", f"file:{serial}"]
        started = time.monotonic()
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            return Accel("tcg", f"cannot run {qemu} for the KVM probe: {exc.strerror}")
        try:
            while time.monotonic() - started < seconds:
                if serial.exists() and b"Linux version" in serial.read_bytes():
                    return Accel("kvm", f"KVM booted the kernel in {time.monotonic() - started:.1f} s")
                if proc.poll() is not None:
                    err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace").strip()
                    return Accel("tcg", f"QEMU with KVM {describe_exit(proc.returncode)} at once"
                                        + (f" ({err.splitlines()[-1]})" if err else ""))
                time.sleep(0.05)
            return Accel("tcg", f"KVM is present but ran no kernel code within {seconds:g} s "
                                "(a host that cannot run normal guests under KVM, e.g. kvm-pvm)")
        finally:
            kill(proc)
            if proc.stderr:
                proc.stderr.close()


def host_tsc_khz() -> int:
    """The host's TSC frequency in kHz, as the guest sees it under TCG (QEMU passes the host TSC through)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return max(1, int(float(line.split(":", 1)[1]) * 1000))
    except (OSError, ValueError, IndexError):
        pass
    return FALLBACK_TSC_KHZ
