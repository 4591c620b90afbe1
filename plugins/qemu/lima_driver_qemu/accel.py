"""Choosing the accelerator: the host's own when it really works, else TCG (reference §4.3).

Lima picks ``kvm`` on Linux because ``/dev/kvm`` exists. On hosts whose KVM is
kvm-pvm (``/dev/kvm`` answers, but only guests built for PVM run), or whose
QEMU cannot set up a ``-cpu host`` vCPU, a standard guest then aborts or hangs
silently at 100 % CPU. So on x86_64 the choice is *probed*: QEMU boots a tiny
firmware (:mod:`._kvmprobe`) under KVM with the machine and CPU the instance
will use, and KVM is used only if the probe reaches 64-bit mode. A working
KVM passes in about 0.1 s; a failing one is known within about a second.

The verdict is cached per host in ``<cache dir>/qemu-accel-probe.json``
(Lima's cache dir, e.g. ``~/.cache/lima``; see :mod:`lima_core.probecache`),
keyed by the QEMU binary (path, size, mtime), the CPU model, the host kernel
and its boot: a reboot, a new kernel or a new QEMU probes again.

``LIMA_QEMU_ACCEL`` overrides the choice: ``tcg``, ``kvm``, ``hvf``, ``whpx``
or ``nvmm`` (used as is, no probe), or ``auto``/empty (the default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from lima_core.errors import ValidationError
from lima_core.limatype import host_arch
from lima_core.probecache import ProbeCache
from lima_core.processes import describe_exit, kill

from . import _kvmprobe
from .binary import Features

log = logging.getLogger(__name__)

ACCEL_ENV = "LIMA_QEMU_ACCEL"
ACCELERATORS = ("tcg", "kvm", "hvf", "whpx", "nvmm")
DEV_KVM = "/dev/kvm"
CACHE_FILE = "qemu-accel-probe.json"
#: bump when the probe changes, to forget old verdicts
PROBE_FORMAT = 1
#: seconds QEMU gets to print the probe's first mark
PROBE_TIMEOUT = 5.0
#: seconds the probe may stay on one mark before it counts as hung
PROBE_STALL = 1.0
_STEPS = {"": "before the firmware ran", "A": "in real mode (protected mode was never reached)",
          "B": "in 32-bit protected mode (long mode was never reached)", "C": "in long mode before 64-bit code ran",
          "ABCD": "after reaching 64-bit code"}

_lock = threading.Lock()
_warned: set[str] = set()


@dataclasses.dataclass(frozen=True)
class Choice:
    """The accelerator to run with and how it was chosen."""

    #: what goes on the command line
    accel: str
    #: "env", "native", "probe", "cache", "fallback" or "non-native"
    source: str
    #: why the host's accelerator is not used ("" when it is)
    reason: str = ""


def native_accel(arch: str, platform: str | None = None) -> str:
    """Lima's ``Accel``: the host's hypervisor for the native arch, else tcg."""
    if arch != host_arch():
        return "tcg"
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return "kvm"
    if platform == "darwin":
        return "hvf"
    if platform.startswith(("netbsd", "dragonfly")):
        return "nvmm"
    if platform == "win32":
        return "whpx"
    return "tcg"


def choose(arch: str, exe: str, cpu: str, features: Features, env: Mapping[str, str] | None = None,
           cache_dir: Path | None = None) -> Choice:
    """The accelerator for *arch* with binary *exe* and CPU model *cpu* (which must be KVM's, e.g. ``host``).

    :raises ValidationError: ``LIMA_QEMU_ACCEL`` names an accelerator *exe* lacks, or *exe* lacks tcg.
    """
    env = os.environ if env is None else env
    forced = env.get(ACCEL_ENV, "").strip().lower()
    if forced and forced != "auto":
        if forced not in ACCELERATORS:
            raise ValidationError(f"${ACCEL_ENV}={forced!r} is not one of auto, {', '.join(ACCELERATORS)}")
        if not features.has_accel(forced):
            raise ValidationError(f"accelerator {forced!r} (from ${ACCEL_ENV}) is not supported by {exe}")
        return Choice(forced, "env")
    native = native_accel(arch)
    if native == "tcg":
        return _tcg(features, exe, "non-native")
    if not features.has_accel(native):
        return _fallback(features, exe, f"{exe} was built without {native}")
    if native != "kvm":
        return Choice(native, "native")
    if not os.path.exists(DEV_KVM):
        return _fallback(features, exe, f"{DEV_KVM} does not exist")
    if not os.access(DEV_KVM, os.R_OK | os.W_OK):
        return _fallback(features, exe, f"no permission to use {DEV_KVM} (is this user in group kvm?)")
    if arch != "x86_64":
        return Choice("kvm", "native")  # the probe firmware is x86 code; trust KVM elsewhere
    ok, detail, cached = cached_probe(exe, cpu, cache_dir)
    if ok:
        return Choice("kvm", "cache" if cached else "probe")
    return _fallback(features, exe, f"KVM cannot run a standard guest here: {detail}")


def _tcg(features: Features, exe: str, source: str, reason: str = "") -> Choice:
    if features.accel_help and not features.has_accel("tcg"):
        raise ValidationError(f"{exe} supports neither the host's accelerator nor tcg"
                              + (f" ({reason})" if reason else ""))
    return Choice("tcg", source, reason)


def _fallback(features: Features, exe: str, reason: str) -> Choice:
    choice = _tcg(features, exe, "fallback", reason)
    short = reason if len(reason) <= 140 else reason[:137].rstrip() + "..."
    message = (f"{short}; using TCG, which is much slower ({ACCEL_ENV}=kvm insists on KVM, "
               f"{ACCEL_ENV}=tcg skips this check)")
    with _lock:
        first = message not in _warned
        _warned.add(message)
    (log.warning if first else log.debug)("%s", message)
    return choice


# -- the probe and its cache ---------------------------------------------------------------


def cached_probe(exe: str, cpu: str, cache_dir: Path | None = None) -> tuple[bool, str, bool]:
    """(kvm works, detail, came from the cache)."""
    cache = ProbeCache(CACHE_FILE, version=PROBE_FORMAT, directory=cache_dir)
    key = cache.key(exe, cpu, boot=True)
    entry = cache.get(key)
    if entry is not None and isinstance(entry.get("ok"), bool):
        return entry["ok"], str(entry.get("detail", "")), True
    started = time.monotonic()
    ok, detail = probe_kvm(exe, cpu)
    seconds = round(time.monotonic() - started, 3)
    log.info("KVM probe with %s -cpu %s: %s (%.2f s)", exe, cpu, "passed" if ok else detail, seconds)
    cache.update(key, {"ok": ok, "detail": detail, "exe": exe, "cpu": cpu, "seconds": seconds})
    return ok, detail, False


def probe_args(exe: str, cpu: str, rom: Path, serial: Path, accel: str = "kvm") -> list[str]:
    return [exe, "-machine", f"q35,accel={accel}", "-cpu", cpu, "-m", "16", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-bios", str(rom),
            "-device", f"isa-debug-exit,iobase={_kvmprobe.EXIT_PORT:#x},iosize=0x04", "-serial", f"file:{serial}"]


def probe_kvm(exe: str, cpu: str, timeout: float = PROBE_TIMEOUT, stall: float = PROBE_STALL,
              accel: str = "kvm") -> tuple[bool, str]:
    """Boot the probe firmware under *accel* (KVM; tests use tcg too); (passed, what happened)."""
    import tempfile  # here: the probe runs once per host and qemu binary

    with tempfile.TemporaryDirectory(prefix="lima-kvm-probe-") as tmp:
        rom, serial, errlog = Path(tmp) / "probe.rom", Path(tmp) / "serial.log", Path(tmp) / "stderr.log"
        rom.write_bytes(_kvmprobe.rom())
        with open(errlog, "wb") as err:
            try:
                proc = subprocess.Popen(probe_args(exe, cpu, rom, serial, accel), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            except OSError as exc:
                return False, f"cannot run {exe}: {exc.strerror}"
        marks, code = "", None
        start = progress = time.monotonic()
        try:
            while True:
                code = proc.poll()
                with contextlib.suppress(OSError):
                    now_marks = serial.read_bytes().decode("ascii", "replace")
                    if now_marks != marks:
                        marks, progress = now_marks, time.monotonic()
                if code is not None:
                    break
                now = time.monotonic()
                if (not marks and now - start > timeout) or (marks and now - progress > stall):
                    break
                time.sleep(0.01)
        finally:
            kill(proc)
        if code == _kvmprobe.EXIT_STATUS and marks == _kvmprobe.MARKS:
            return True, "the probe guest reached 64-bit mode"
        where = _STEPS.get(marks, f"after printing {marks!r}")
        if code is None:
            return False, f"the probe guest hung {where}"
        stderr = " ".join(errlog.read_text(errors="replace").replace(f"{exe}: ", "").split())[:300]
        return False, f"qemu -cpu {cpu} {describe_exit(code)} {where}" + (f": {stderr}" if stderr else "")
