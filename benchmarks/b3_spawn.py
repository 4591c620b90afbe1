"""B3: an external driver's spawn-to-ready against ``python -c "import grpc"``.

Spawn-to-ready is ``lima_core.external.client.connect`` on an instance with
no server yet, as a lima command does it: spawn ``lima-driver-<name> --inst-dir
DIR``, wait for its socket to accept, open a channel and get the first answer
(``GetProtocolInfo``). The server is stopped between runs (not timed). Both
the fake driver (``lima-driver-fake``, written by ``write_executable``) and the
qemu driver's console script (``lima-driver-qemu``) are measured.

Each case runs at least ``MIN_RUNS`` times (outside ``--quick``): a spawn is
cheap, and on a shared machine the floor's time swings between two levels
(``python -c "import grpc"``: about 130 and about 200 ms here, in spells of
a few seconds), so a median of 7 could land on either.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from . import _env, _timing
from .b2_roundtrip import FAKE_TARGET, fake_instance, lima_home

ID = "B3"
TARGET = 1.3
MIN_RUNS = 15


def _connect_case(path: str, name: str, inst_dir: Path, rss: list[float]) -> _timing.Case:
    from lima_core.external import supervisor
    from lima_core.external.client import connect

    def case() -> float:
        started = time.perf_counter()
        host = connect(path, name, inst_dir)
        elapsed = time.perf_counter() - started
        pid = int((inst_dir / f"{name}.drv.pid").read_text())
        peak = _env.peak_rss_mib(pid)
        if peak is not None:
            rss.append(peak)
        host.close()
        supervisor.stop_servers(inst_dir)
        return elapsed
    return case


def run(opts: _env.Options) -> list[_timing.Row]:
    from lima_core.external.build import write_executable

    with _env.private_home(opts, "lb3") as home, lima_home(home):
        fake = write_executable(home / "_bin", "fake", FAKE_TARGET)
        drivers = {"fake": str(fake)}
        qemu = _env.BIN / "lima-driver-qemu"
        if qemu.exists():
            drivers["qemu"] = str(qemu)
        rss: dict[str, list[float]] = {name: [] for name in drivers}
        cases: dict[str, _timing.Case] = {"floor": _env.spawn_case([_env.python(), "-c", "import grpc"], _env.env(home))}
        for name, path in drivers.items():
            cases[name] = _connect_case(path, name, fake_instance(home, f"b3{name}"), rss[name])
        runs = opts.runs if opts.quick else max(opts.runs, MIN_RUNS)
        samples = _timing.interleaved(cases, runs, opts.warmup)
        floor_rss = _floor_rss()
    rows = [_timing.row(ID, f"external driver spawn-to-ready (lima-driver-{name})", "ms", samples[name],
                        'python -c "import grpc"', samples["floor"], factor=1000, target=TARGET,
                        extra={"runs": len(samples["floor"])})
            for name in drivers]
    for name in drivers:
        rows.append(_timing.Row(id="RSS", what=f"external driver RSS when ready (lima-driver-{name})", unit="MiB",
                                value=_timing.median(rss[name]), floor='python -c "import grpc"',
                                floor_value=floor_rss, samples=rss[name], load=_timing.load()))
    return rows


def _floor_rss() -> float:
    """VmHWM of ``python -c "import grpc"``, in MiB, read as for the drivers (ru_maxrss would count the
    forking parent's pages too)."""
    proc = subprocess.Popen([_env.python(), "-c", "import grpc, sys; print(flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return _env.peak_rss_mib(proc.pid) or float("nan")
    finally:
        proc.kill()
        proc.wait()
