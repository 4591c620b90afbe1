"""B9: connection set-up through lima-core's forward against QEMU's own hostfwd.

B9: connection set-up through the forward lima-core made (the guest agent) against QEMU's own
``hostfwd`` to the same server in the cloud-init guest: connect, then the server's first byte.

Each sample is the mean of a batch of connections made one after the other, the sides interleaved
(the server is B8's).
"""

from __future__ import annotations

import socket
import time

from . import _env, _portfwd, _timing
from .b8_throughput import server

ID = "B9"
TARGET = 2.0
BATCH = 10


def setup(port: int) -> _timing.Case:
    def case() -> float:
        started = time.perf_counter()
        for _ in range(BATCH):
            with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
                if c.recv(1) != b"e":
                    raise RuntimeError("no greeting")
        return (time.perf_counter() - started) / BATCH
    return case


def run(opts: _env.Options) -> list[_timing.Row]:
    try:
        g = _portfwd.shared_guest(opts, "cloud")
        _mib, port, floor = server(opts, g)
        s = _timing.interleaved({"lima": setup(port), "hostfwd": setup(floor)}, opts.runs, opts.warmup)
    finally:
        _portfwd.release(opts, ID)
    return [_timing.row(ID, "connect → first byte, forwarded by lima-core (guest agent)", "ms", s["lima"],
                        "QEMU hostfwd to the same guest server", s["hostfwd"], factor=1000, target=TARGET,
                        extra={"batch": BATCH})]
