"""B2: an external driver's hook round trip (``info``, ``ssh_address``) against a bare grpcio unary call.

The measured side is what the host agent does: ``DriverHost.info()`` and
``DriverHost.ssh_address()`` on a host connected to ``lima-driver-fake``
(pluggy, the generated shim, the client, gRPC over the instance's unix
socket, the server's session lookup, the driver, and back). The floor is a
bare grpcio server in its own process answering the very bytes the driver's
server sends for that call, called with a bare ``unary_unary`` stub on a
unix socket. Each sample is the mean of a batch of calls.

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

from . import _env, _grpc_floor, _timing

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


@contextlib.contextmanager
def floor_server(sock: Path, payloads: dict[str, bytes], work: Path) -> Iterator[subprocess.Popen]:
    table = work / "floor-payloads.json"
    table.write_text(json.dumps({k: v.hex() for k, v in payloads.items()}))
    proc = subprocess.Popen([_env.python(), _grpc_floor.__file__, str(sock), str(table)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare grpc floor server did not start")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _batch(fn: object, n: int) -> _timing.Case:
    def case() -> float:
        started = time.perf_counter()
        for _ in range(n):
            fn()  # type: ignore[operator]
        return (time.perf_counter() - started) / n
    return case


def run(opts: _env.Options) -> list[_timing.Row]:
    from lima_core import protocol, store
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
            payloads = {"/Driver/Info": protocol.WIRE["info"].response(info).encode(),
                        "/Driver/SSHAddress": protocol.WIRE["ssh_address"].response(address).encode()}
            with floor_server(home / "floor.sock", payloads, home):
                bare = _grpc_floor.Client(str(home / "floor.sock"))
                try:
                    cases = {"info": _batch(host.info, batch), "ssh_address": _batch(host.ssh_address, batch),
                             "floor_info": _batch(lambda: bare.call("/Driver/Info"), batch),
                             "floor_ssh": _batch(lambda: bare.call("/Driver/SSHAddress"), batch)}
                    samples = _timing.interleaved(cases, opts.runs, opts.warmup)
                finally:
                    bare.close()
            pid = int((inst_dir / "fake.drv.pid").read_text())
            rss = _env.peak_rss_mib(pid)
        finally:
            host.close()
            supervisor.stop_servers(inst_dir)
    rows = []
    for hook, floor_key in (("info", "floor_info"), ("ssh_address", "floor_ssh")):
        size = len(payloads["/Driver/Info" if hook == "info" else "/Driver/SSHAddress"])
        rows.append(_timing.row(ID, f"external hook {hook} (lima-driver-fake)", "µs", samples[hook],
                                "bare grpcio unary call, unix socket, same payload", samples[floor_key],
                                factor=1e6, target=TARGET,
                                extra={"calls_per_sample": batch, "response_bytes": size}))
    rows.append(_timing.Row(id="RSS", what="external driver peak RSS (lima-driver-fake, after B2's calls)",
                            unit="MiB", value=rss or float("nan"), load=_timing.load()))
    return rows
