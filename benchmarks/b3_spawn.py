"""B3: an external driver's spawn-to-ready against a hand-written grpcio driver's spawn-to-first-answer.

Spawn-to-ready is ``lima_core.external.client.connect`` on an instance with
no server yet, as a lima command does it: spawn ``lima-driver-<name> --inst-dir
DIR``, wait for its socket to accept, open a channel and get the first answer
(``GetProtocolInfo``). Both the fake driver (``lima-driver-fake``, written by
``write_executable``) and the qemu driver's console script
(``lima-driver-qemu``) are measured.

The floor is what an author would write by hand (``_floor_driver``: grpcio
and protoc's stubs, no framework), timed the same way: spawn it, wait for its
socket, open a channel and get the answer to its first ``Info``. Servers are
stopped between runs (not timed).

Each case runs at least ``MIN_RUNS`` times (outside ``--quick``): a spawn is
cheap, and on a shared machine a process's start-up swings between levels in
spells of a few seconds, so a median of 7 could land on either.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import _env, _floor_driver, _timing
from .b2_roundtrip import FAKE_TARGET, fake_instance, floor_responses, lima_home, spawn_floor, stop_floor, wait_socket

ID = "B3"
TARGET = 1.35  # what lima-core's start-up on protobuf, pluggy and dataclasses allows (docs/benchmarks.md)
MIN_RUNS = 15
FLOOR = "hand-written grpcio driver (protoc stubs): spawn to first Info answer"


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


def _floor_case(stubs: Path, inst_dir: Path, responses: Path, rss: list[float]) -> _timing.Case:
    import grpc

    driver_pb2, driver_pb2_grpc = _floor_driver.import_stubs(stubs)
    empty = driver_pb2.google_dot_protobuf_dot_empty__pb2.Empty()
    sock = _floor_driver.socket_path(inst_dir)

    def case() -> float:
        started = time.perf_counter()
        proc = spawn_floor(stubs, inst_dir, responses)
        try:
            wait_socket(sock)
            with grpc.insecure_channel(f"unix://{sock}") as chan:
                driver_pb2_grpc.DriverStub(chan).Info(empty, timeout=10, wait_for_ready=True)
                elapsed = time.perf_counter() - started
            peak = _env.peak_rss_mib(proc.pid)
            if peak is not None:
                rss.append(peak)
        finally:
            stop_floor(proc)
            sock.unlink(missing_ok=True)
        return elapsed
    return case


def run(opts: _env.Options) -> list[_timing.Row]:
    from lima_core.external.build import write_executable
    from lima_core.limatype import Info

    with _env.private_home(opts, "lb3") as home, lima_home(home):
        fake = write_executable(home / "_bin", "fake", FAKE_TARGET)
        drivers = {"fake": str(fake)}
        qemu = _env.BIN / "lima-driver-qemu"
        if qemu.exists():
            drivers["qemu"] = str(qemu)
        rss: dict[str, list[float]] = {name: [] for name in [*drivers, "floor"]}
        floor_dir = home / "floor"
        floor_dir.mkdir()
        stubs = _floor_driver.generate_stubs(home / "floor-stubs")
        responses = floor_responses(home, Info(name="floor").to_json_bytes(), "127.0.0.1")
        cases: dict[str, _timing.Case] = {"floor": _floor_case(stubs, floor_dir, responses, rss["floor"])}
        for name, path in drivers.items():
            cases[name] = _connect_case(path, name, fake_instance(home, f"b3{name}"), rss[name])
        runs = opts.runs if opts.quick else max(opts.runs, MIN_RUNS)
        samples = _timing.interleaved(cases, runs, opts.warmup)
    rows = [_timing.row(ID, f"external driver spawn-to-ready (lima-driver-{name})", "ms", samples[name],
                        FLOOR, samples["floor"], factor=1000, target=TARGET, extra={"runs": len(samples["floor"])})
            for name in drivers]
    for name in drivers:
        rows.append(_timing.Row(id="RSS", what=f"external driver RSS when ready (lima-driver-{name})", unit="MiB",
                                value=_timing.median(rss[name]), floor="hand-written grpcio driver when answering",
                                floor_value=_timing.median(rss["floor"]), samples=rss[name], load=_timing.load()))
    return rows
