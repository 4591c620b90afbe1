"""B2: an external driver's hook round trip (``info``, ``ssh_address``) against a bare grpcio call.

The measured side is what the host agent does: ``DriverHost.info()`` and
``DriverHost.ssh_address()`` on a host connected to ``lima-driver-fake``
(pluggy, the shim, the client, gRPC over the instance's unix socket, the
server's session lookup, the driver, and back). The floor is the hand-written
driver of ``_floor_driver`` in its own process, answering the same responses,
called through protoc's ``DriverStub`` on a unix socket. Each sample is the
mean of a batch of calls.

Also reported: the external driver process's peak RSS after the calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from . import _env, _floor_driver, _timing

ID = "B2"
TARGET = 1.5
BATCH = 400
QUICK_BATCH = 100
FAKE_TARGET = "lima_core.testing.fakedriver:FakeDriver"


@contextlib.contextmanager
def lima_home(path: Path) -> Iterator[None]:
    old = os.environ.get("LIMA_HOME")
    os.environ["LIMA_HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["LIMA_HOME"]
        else:
            os.environ["LIMA_HOME"] = old


def fake_instance(home: Path, name: str) -> Path:
    from lima_core import store, yamlfile

    return store.write_new(name, yamlfile.dump({
        "vmType": "fake", "arch": "x86_64", "cpus": 1, "memory": "512MiB", "disk": "1GiB",
        "images": [{"location": "/nonexistent/fake.img", "arch": "x86_64"}], "mounts": []}))


def floor_responses(work: Path, info_json: bytes, address: str) -> Path:
    table = work / "floor-responses.json"
    table.write_text(json.dumps({"info_json": info_json.hex(), "address": address}))
    return table


def spawn_floor(stubs: Path, inst_dir: Path, responses: Path) -> subprocess.Popen:
    """Start the floor driver serving *inst_dir*; the caller waits for its socket."""
    return subprocess.Popen([_env.python(), _floor_driver.__file__, str(stubs), "--inst-dir", str(inst_dir),
                             str(responses)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def stop_floor(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_socket(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the floor driver did not create {path}")
        time.sleep(0.002)


@contextlib.contextmanager
def floor_server(stubs: Path, inst_dir: Path, responses: Path) -> Iterator[Path]:
    proc = spawn_floor(stubs, inst_dir, responses)
    sock = _floor_driver.socket_path(inst_dir)
    try:
        wait_socket(sock)
        yield sock
    finally:
        stop_floor(proc)


def _batch(fn: object, n: int) -> _timing.Case:
    def case() -> float:
        started = time.perf_counter()
        for _ in range(n):
            fn()  # type: ignore[operator]
        return (time.perf_counter() - started) / n
    return case


def run(opts: _env.Options) -> list[_timing.Row]:
    import grpc

    from lima_core import store
    from lima_core.external import supervisor
    from lima_core.external.build import write_executable
    from lima_core.external.client import connect

    batch = QUICK_BATCH if opts.quick else BATCH
    with _env.private_home(opts, "lb2") as home, lima_home(home):
        driver = write_executable(home / "_bin", "fake", FAKE_TARGET)
        inst_dir = fake_instance(home, "b2")
        host = connect(str(driver), "fake", inst_dir)
        try:
            inst = store.inspect("b2", driver_status=False)
            host.configure(inst)
            info, address = host.info(), host.ssh_address()
            sizes = {"info": len(info.to_json_bytes()), "ssh_address": len(address)}
            floor_dir = home / "floor"
            floor_dir.mkdir()
            stubs = _floor_driver.generate_stubs(home / "floor-stubs")
            driver_pb2, driver_pb2_grpc = _floor_driver.import_stubs(stubs)
            responses = floor_responses(home, info.to_json_bytes(), address)
            with floor_server(stubs, floor_dir, responses) as sock, grpc.insecure_channel(f"unix://{sock}") as chan:
                stub = driver_pb2_grpc.DriverStub(chan)
                empty = driver_pb2.google_dot_protobuf_dot_empty__pb2.Empty()
                cases = {"info": _batch(host.info, batch), "ssh_address": _batch(host.ssh_address, batch),
                         "floor_info": _batch(lambda: stub.Info(empty, timeout=10), batch),
                         "floor_ssh": _batch(lambda: stub.SSHAddress(empty, timeout=10), batch)}
                samples = _timing.interleaved(cases, opts.runs, opts.warmup)
            pid = int((inst_dir / "fake.drv.pid").read_text())
            rss = _env.peak_rss_mib(pid)
        finally:
            host.close()
            supervisor.stop_servers(inst_dir)
    rows = []
    for hook, floor_key in (("info", "floor_info"), ("ssh_address", "floor_ssh")):
        rows.append(_timing.row(ID, f"external hook {hook} (lima-driver-fake)", "µs", samples[hook],
                                "hand-written grpcio driver, protoc stubs, same response", samples[floor_key],
                                factor=1e6, target=TARGET,
                                extra={"calls_per_sample": batch, "response_bytes": sizes[hook]}))
    rows.append(_timing.Row(id="RSS", what="external driver peak RSS (lima-driver-fake, after B2's calls)",
                            unit="MiB", value=rss or float("nan"), load=_timing.load()))
    return rows
