"""What every benchmark shares: the lima command, a private LIMA_HOME, the machine's description."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: Variables that would let the developer's setup leak into a measurement. PYTHONDONTWRITEBYTECODE
#: would make every process compile lima-core from source at each start, which installed
#: copies never do (pip writes the bytecode); without it the warm-up runs write it.
_SCRUBBED = ("LIMA_HOME", "LIMA_DRIVERS_PATH", "LIMA_LOAD_DRIVERS", "LIMA_EXTERNAL_DRIVERS", "LIMA_TRACE_DRIVERS",
             "LIMA_QEMU_ACCEL", "PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE")


class Skip(Exception):
    """A benchmark that cannot run here (the reason is reported, not an error)."""


@dataclasses.dataclass
class Options:
    quick: bool
    runs: int
    warmup: int
    #: the ids being run (B1 and B6 share their boots)
    only: list[str] = dataclasses.field(default_factory=list)
    keep: bool = False
    #: B5's instance counts, instead of the default ones
    counts: tuple[int, ...] = ()
    #: results shared between benchmarks in one run
    shared: dict[str, Any] = dataclasses.field(default_factory=dict)


def lima_command() -> list[str]:
    """The ``lima`` console script installed beside this interpreter (what users run)."""
    script = BIN / "lima"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lima_core"]


def python() -> str:
    return sys.executable


def env(home: Path, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    out["LIMA_HOME"] = str(home)
    out.update(extra)
    return out


@contextlib.contextmanager
def private_home(opts: Options, prefix: str = "lb") -> Iterator[Path]:
    """A short LIMA_HOME under /tmp (unix socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    try:
        yield path
    finally:
        if not opts.keep:
            shutil.rmtree(path, ignore_errors=True)


def run(argv: list[str], env: dict[str, str] | None = None, check: bool = True, timeout: float = 600,
        **kwargs: Any) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                          **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (the peak resident set so far) of a live process, in MiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return int(match[1]) / 1024 if match else None


def test_guest() -> Path | None:
    """The built test guest (``scripts/build-test-guest``), or None."""
    d = Path(os.environ.get("LIMA_TEST_GUEST_DIR") or REPO / ".cache" / "test-guest" / "current")
    if all((d / f).is_file() for f in ("vmlinux", "initrd.img", "disk.qcow2")):
        return d.resolve()
    return None


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    mem_gib = None
    with contextlib.suppress(OSError, StopIteration):
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
        mem_gib = round(kb / 1024 / 1024, 1)
    qemu = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.splitlines()[0]
    packages = {}
    for dist in ("lima-core", "lima-driver-qemu", "grpcio", "protobuf", "typer", "pydantic", "pluggy", "psutil",
                 "PyYAML"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[dist] = metadata.version(dist)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib, "kernel": platform.release(),
            "os": _os_release(), "python": platform.python_version(), "qemu": qemu, "packages": packages,
            "kvm": "present" if os.path.exists("/dev/kvm") else "absent"}


def _os_release() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def spawn_case(argv: list[str], env: dict[str, str]) -> Any:
    """A timing case: run *argv* to completion, output discarded, failure raised."""
    def case() -> None:
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
    return case
