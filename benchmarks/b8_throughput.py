"""B8: bulk transfer guest → host through lima-core's forward against QEMU's own hostfwd.

B8: bulk transfer from a server in the cloud-init guest to the host, through the forward lima-core
made (the guest agent, over qemu's virtio-serial port) against QEMU's own ``hostfwd`` to the same server.

The server (Python, in the guest) answers each connection with one byte, then sends N MiB when asked;
each sample is one connection's transfer, from connect to the last byte, the sides interleaved. The
figure is the time for the N MiB, so the target ratio 1.25 is throughput at least 0.8 times QEMU's;
MB/s are in the row's extra.
"""

from __future__ import annotations

import socket
import time

from . import _env, _portfwd, _timing

ID = "B8"
TARGET = 1.25  # time ratio: throughput >= 0.8x
MIB = 32
QUICK_MIB = 4


def server(opts: _env.Options, g: _portfwd.Guest) -> tuple[int, int, int]:
    """(MiB per transfer, host port lima forwards, host port of QEMU's hostfwd) of the guest's bulk server."""
    if _portfwd.SERVER_KEY in opts.shared:
        return opts.shared[_portfwd.SERVER_KEY]
    mib = QUICK_MIB if opts.quick else MIB
    port = _portfwd.free_port()
    g.shell("sh", "-c", f"nohup python3 /tmp/bench.py serve {port} {mib} >/tmp/srv-{port}.log 2>&1 </dev/null &")
    g.wait_forwarded(port)
    floor = _portfwd.free_port()
    g.hostfwd(floor, port)
    g.wait_forwarded(floor)
    opts.shared[_portfwd.SERVER_KEY] = (mib, port, floor)
    return mib, port, floor


def transfer(port: int, mib: int) -> _timing.Case:
    def case() -> float:
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=120) as c:
            if c.recv(1) != b"e":
                raise RuntimeError("no greeting")
            c.sendall(b"b")
            got = 0
            while data := c.recv(1 << 20):
                got += len(data)
        if got != mib << 20:
            raise RuntimeError(f"received {got} bytes, not {mib << 20}")
        return time.perf_counter() - started
    return case


def run(opts: _env.Options) -> list[_timing.Row]:
    try:
        g = _portfwd.shared_guest(opts, "cloud")
        mib, port, floor = server(opts, g)
        s = _timing.interleaved({"lima": transfer(port, mib), "hostfwd": transfer(floor, mib)}, opts.runs,
                                opts.warmup)
    finally:
        _portfwd.release(opts, ID)
    mbps = {k: round(mib * 1.048576 / _timing.median(v), 1) for k, v in s.items()}
    return [_timing.row(ID, f"{mib} MiB guest → host, forwarded by lima-core (guest agent)", "s", s["lima"],
                        "QEMU hostfwd to the same guest server", s["hostfwd"], target=TARGET,
                        extra={"MB/s": mbps["lima"], "floor MB/s": mbps["hostfwd"],
                               "throughput ratio": round(mbps["lima"] / mbps["hostfwd"], 3)})]
