"""B5: ``lima list`` at 0, 10, 100 and 500 instances, a fifth of them on an external driver.

The instance directories are written directly, holding what ``lima create``
leaves in them: ``lima.yaml``, ``lima-version`` and ``driver.json`` (the
driver's name, location and implemented hooks, as ``instance.load_driver``
records them). Four fifths use the internal qemu driver; the rest the fake
driver as an external executable (``lima-driver-fake`` on
``LIMA_DRIVERS_PATH``). All are stopped.

Processes spawned by ``lima list`` are counted in a separate, untimed run
with a Python audit hook (``subprocess.Popen``, ``os.posix_spawn``,
``os.fork``, ``os.exec``, ``os.system``): everything lima-core could start.
The target is none per instance: at most one per external driver (the fake
driver answers ``inspect_status``, so it is asked, once for all its
instances).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from . import _env, _timing

ID = "B5"
COUNTS = (0, 10, 100, 500)
QUICK_COUNTS = (0, 10, 50)
TARGET_500_MS = 2000.0
FAKE_TARGET = "lima_core.testing.fakedriver:FakeDriver"

_COUNTING = r"""
import os, sys
_EVENTS = {"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.exec", "os.spawn", "os.system"}
_spawned = []
def _hook(event, args):
    if event in _EVENTS:
        _spawned.append(event)
sys.addaudithook(_hook)
import atexit
atexit.register(lambda: os.write(2, ("\nLIMA-BENCH-SPAWNED %d\n" % len(_spawned)).encode()))
sys.argv = ["lima", "list"]
from lima_core.cli import main
main()
"""


def _hooks(driver_class: type) -> list[str]:
    from lima_core.host import DriverHost

    return sorted(DriverHost(driver_class(), "x").implemented)


def _qemu_yaml() -> str:
    from lima_core import yamlfile

    data = yaml.safe_load((_env.REPO / "templates" / "test-guest.yaml").read_text())
    for image in data.get("images", []):
        for obj in (image, image.get("kernel") or {}, image.get("initrd") or {}):
            if "location" in obj:
                obj["location"] = str((_env.REPO / "templates" / obj["location"]).resolve())
    return yamlfile.dump(data)


def _fake_yaml() -> str:
    from lima_core import yamlfile

    return yamlfile.dump({"vmType": "fake", "arch": "x86_64", "cpus": 1, "memory": "512MiB", "disk": "1GiB",
                          "images": [{"location": "/nonexistent/fake.img", "arch": "x86_64"}], "mounts": []})


def populate(home: Path, count: int, driver_bin: Path) -> None:
    """*count* stopped instances, every fifth on the external fake driver."""
    from lima_driver_qemu.driver import QemuDriver

    from lima_core import LIMA_COMPAT_VERSION
    from lima_core.testing.fakedriver import FakeDriver

    qemu_yaml, fake_yaml = _qemu_yaml(), _fake_yaml()
    qemu_info = json.dumps({"name": "qemu", "location": "internal", "hooks": _hooks(QemuDriver)}) + "\n"
    fake_info = json.dumps({"name": "fake", "location": str(driver_bin / "lima-driver-fake"),
                            "hooks": _hooks(FakeDriver)}) + "\n"
    for i in range(count):
        external = i % 5 == 4
        d = home / f"vm{i:03d}"
        d.mkdir(mode=0o700)
        (d / "lima.yaml").write_text(fake_yaml if external else qemu_yaml)
        (d / "lima-version").write_text(LIMA_COMPAT_VERSION + "\n")
        (d / "driver.json").write_text(fake_info if external else qemu_info)


def spawned(env: dict[str, str]) -> int:
    proc = subprocess.run([_env.python(), "-c", _COUNTING], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=600)
    for line in proc.stderr.splitlines():
        if line.startswith("LIMA-BENCH-SPAWNED "):
            return int(line.split()[1])
    raise RuntimeError(f"lima list under the audit hook failed ({proc.returncode}): {proc.stderr[-2000:]}")


def listed(env: dict[str, str]) -> int:
    proc = _env.run([*_env.lima_command(), "list", "-q"], env=env)
    return len(proc.stdout.split())


def run(opts: _env.Options) -> list[_timing.Row]:
    from lima_core.external.build import write_executable

    counts = opts.counts or (QUICK_COUNTS if opts.quick else COUNTS)
    lima = _env.lima_command()
    with _env.private_home(opts, "lb5") as root:
        driver_bin = root / "bin"
        write_executable(driver_bin, "fake", FAKE_TARGET)
        envs = {}
        for n in counts:
            home = root / f"h{n}"
            home.mkdir()
            populate(home, n, driver_bin)
            envs[n] = _env.env(home, LIMA_DRIVERS_PATH=str(driver_bin))
            if listed(envs[n]) != n:
                raise RuntimeError(f"lima list -q does not show the {n} instances written")

        cases = {n: _env.spawn_case([*lima, "list"], envs[n]) for n in counts}
        cpu: dict[int, list[float]] = {}
        samples = _timing.interleaved(cases, opts.runs, opts.warmup, cpu)
        base = _timing.median(samples[counts[0]])
        rows = []
        for n in counts:
            procs = spawned(envs[n])
            total = _timing.median(samples[n])
            extra = {"instances": n, "external_instances": n // 5, "processes_spawned": procs,
                     "per_instance_ms": round((total - base) / n * 1000, 3) if n else None,
                     "met": procs <= (1 if n >= 5 else 0),
                     **_timing.cpu_extra(cpu, n, counts[0] if n else None)}
            rows.append(_timing.row(ID, f"lima list, {n} instances", "ms", samples[n],
                                    "lima list, 0 instances" if n else "", samples[counts[0]] if n else None,
                                    factor=1000, target_abs=TARGET_500_MS if n == 500 else None, extra=extra))
    return rows


if __name__ == "__main__":  # a quick look: python -m benchmarks.b5_list N
    import sys
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    home = Path(tempfile.mkdtemp(prefix="lb5-", dir="/tmp"))
    from lima_core.external.build import write_executable
    write_executable(home / "_bin", "fake", FAKE_TARGET)
    populate(home, n, home / "_bin")
    print(f"LIMA_HOME={home} LIMA_DRIVERS_PATH={home / '_bin'}", os.linesep, file=sys.stderr)
