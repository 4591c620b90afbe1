"""The QEMU executable: which one, which version, what it supports (reference §4.3).

- :func:`find_executable`: ``qemu-system-<arch>``, or ``$QEMU_SYSTEM_<ARCH>``
  parsed as shell words (extra words become arguments, for debugging only),
  looked up in PATH.
- :func:`parse_version` / :func:`version`: ``QEMU emulator version X.Y.Z``.
- :func:`minimum_versions` and :func:`check_version`: Lima's hard and soft
  minimums per host, and the template's ``vmOpts.qemu.minimumVersion``.
- :func:`features`: the ``-accel help``, ``-netdev help``, ``-machine help``
  and ``-cpu help`` outputs, matched by substring as Lima does.

Results that cost a process run are cached per executable (path, size and
mtime): in the process, and in ``<cache dir>/qemu-binary-probe.json`` (Lima's
cache dir, beside the KVM probe's; see :mod:`lima_core.probecache`), so ``lima start``, its host agent and a
driver process do not each run QEMU five times before starting it. Only
complete answers are kept on disk; a new or rebuilt QEMU is asked again.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from lima_core.errors import ValidationError
from lima_core.probecache import ProbeCache
from lima_core.processes import describe_exit

from .config import parse_semver

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^QEMU emulator version (\d+)\.(\d+)\.(\d+)")
#: how long one ``qemu-system-* ... help`` may take
HELP_TIMEOUT = 30.0
CACHE_FILE = "qemu-binary-probe.json"
#: bump when what is stored changes, to forget old entries
CACHE_FORMAT = 1

Version = tuple[int, int, int]


def qemu_arch(arch: str) -> str:
    """The arch in QEMU's binary names: armv7l -> arm, ppc64le -> ppc64."""
    return {"armv7l": "arm", "ppc64le": "ppc64"}.get(arch, arch)


def env_var(arch: str) -> str:
    return "QEMU_SYSTEM_" + qemu_arch(arch).upper()


def find_executable(arch: str, env: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """(absolute path of the qemu-system binary, extra arguments from the environment).

    :raises ValidationError: the override does not parse, or nothing is found in PATH.
    """
    env = os.environ if env is None else env
    base, extra = f"qemu-system-{qemu_arch(arch)}", []
    var = env_var(arch)
    value = env.get(var, "")
    if value:
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ValidationError(f"cannot parse ${var} ({value!r}): {exc}") from None
        if not words:
            raise ValidationError(f"${var} is set but names no program")
        base, extra = words[0], words[1:]
        if extra:
            log.warning("specifying QEMU arguments (%s) through $%s is supported only for debugging",
                        " ".join(extra), var)
    import shutil  # here, not at import: it loads bz2 and lzma, which a driver process answering info never needs

    path = shutil.which(base, path=env.get("PATH", os.defpath))
    if path is None:
        where = f" (from ${var})" if value else ""
        raise ValidationError(f"{base}{where} was not found in PATH; install QEMU "
                              f"(e.g. `apt-get install qemu-system`, `brew install qemu`) or set ${var}")
    return os.path.abspath(path), extra


def parse_version(output: str) -> Version:
    """The version in ``qemu-system-* --version`` output; ValueError if there is none."""
    match = _VERSION.match(output.split("\n", 1)[0])
    if not match:
        raise ValueError(f"no 'QEMU emulator version X.Y.Z' in {output.strip()[:120]!r}")
    return int(match[1]), int(match[2]), int(match[3])


def format_version(v: Version) -> str:
    return ".".join(map(str, v))


def minimum_versions(platform: str | None = None, machine: str | None = None) -> tuple[Version, Version]:
    """Lima's (hard, soft) minimum QEMU versions for a host."""
    platform = platform or sys.platform
    machine = (machine or os.uname().machine).lower()
    if platform == "darwin":
        if machine in ("arm64", "aarch64"):
            return (8, 2, 1), (8, 2, 1)
        return (7, 0, 0), (8, 2, 1)
    if platform == "win32":
        return (11, 0, 0), (11, 0, 0)
    return (4, 0, 0), (6, 2, 0)


def check_version(found: Version, template_minimum: str | None = None, *,
                  platform: str | None = None, machine: str | None = None) -> list[str]:
    """Raise when *found* is below the hard or the template's minimum; return warnings otherwise."""
    hard, soft = minimum_versions(platform, machine)
    if found < hard:
        raise ValidationError(f"QEMU {format_version(found)} is too old, {format_version(hard)} or later "
                              "is required")
    if template_minimum:
        want = parse_semver(template_minimum)
        if found < want:
            raise ValidationError(f"QEMU {format_version(found)} is too old, the template requires "
                                  f"{template_minimum!r} or later (vmOpts.qemu.minimumVersion)")
    if found < soft:
        return [f"QEMU {format_version(found)} is too old, {format_version(soft)} or later is recommended"]
    return []


def _stamp(exe: str) -> tuple[str, int, int]:
    st = os.stat(exe)
    return exe, st.st_size, st.st_mtime_ns


def _run(exe: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([exe, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=HELP_TIMEOUT)


def version(exe: str) -> Version:
    """The executable's version. :raises ValueError: it does not say."""
    return _version(_stamp(exe))


@functools.lru_cache(maxsize=16)
def _version(stamp: tuple[str, int, int]) -> Version:
    cached = _cached(stamp, "version")
    if isinstance(cached, list) and len(cached) == 3 and all(isinstance(n, int) for n in cached):
        return (cached[0], cached[1], cached[2])
    proc = _run(stamp[0], "--version")
    if proc.returncode != 0:
        raise ValueError(f"`{stamp[0]} --version` {describe_exit(proc.returncode)}: {proc.stderr.strip()}")
    found = parse_version(proc.stdout)
    _store(stamp, "version", list(found))
    return found


@dataclasses.dataclass(frozen=True)
class Features:
    """What the binary says it supports (Lima's ``features``)."""

    accel_help: str = ""
    netdev_help: str = ""
    machine_help: str = ""
    cpu_help: str = ""

    def has_accel(self, accel: str) -> bool:
        return accel in self.accel_help.split()

    def has_cpu(self, cpu: str) -> bool:
        """Lima's check: the model before the first comma appears in ``-cpu help``; ``max`` always passes."""
        model = cpu.split(",", 1)[0]
        return model == "max" or model in self.cpu_help


def machine_for(arch: str) -> str:
    """The machine type ``-cpu help`` is asked about (it needs one)."""
    return "q35" if arch == "x86_64" else "virt"


def features(exe: str, machine: str) -> Features:
    """:raises ValidationError: ``-accel help`` fails (Lima: fatal); other probes only warn."""
    return _features(_stamp(exe), machine)


@functools.lru_cache(maxsize=16)
def _features(stamp: tuple[str, int, int], machine: str) -> Features:
    cached = _cached(stamp, f"features:{machine}")
    fields = {f.name for f in dataclasses.fields(Features)}
    if isinstance(cached, dict) and set(cached) == fields and all(isinstance(v, str) for v in cached.values()):
        return Features(**cached)
    exe = stamp[0]
    out: dict[str, str] = {}
    for field, args in (("accel_help", ("-M", "none", "-accel", "help")),
                        ("netdev_help", ("-M", "none", "-netdev", "help")),
                        ("machine_help", ("-machine", "help")),
                        ("cpu_help", ("-cpu", "help", "-machine", machine))):
        try:
            proc = _run(exe, *args)
        except (OSError, subprocess.TimeoutExpired) as exc:
            proc = subprocess.CompletedProcess([exe, *args], 1, "", str(exc))
        if proc.returncode != 0:
            message = f"`{exe} {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()[:200]}"
            if field == "accel_help":
                raise ValidationError(message)
            log.warning("%s", message)
            continue
        # Old versions print help on stderr.
        out[field] = proc.stdout or proc.stderr
    if len(out) == 4:  # every probe answered
        _store(stamp, f"features:{machine}", out)
    return Features(**out)


# -- the cache on disk ----------------------------------------------------------------------

_CACHE = ProbeCache(CACHE_FILE, version=CACHE_FORMAT, max_entries=16)


def _cached(stamp: tuple[str, int, int], what: str) -> Any:
    entry = _CACHE.get(_CACHE.key(stamp[0]))
    return entry.get(what) if entry is not None else None


def _store(stamp: tuple[str, int, int], what: str, value: Any) -> None:
    """Record *value*; a cache that cannot be written is only a slower next start."""
    _CACHE.update(_CACHE.key(stamp[0]), {"exe": stamp[0], what: value})
