"""B7: a new listener in the guest until a host connection reaches it, against a 0.5 s target.

B7: a new listener in the guest, until a connection on the host reaches it (no configuration: the
default rule forwards it to the same port on the host's 127.0.0.1).

A program in the guest binds a fresh port, then calls listen() when the host tells it to, over its
``lima shell`` session; the clock starts as the host writes that word (so it includes the way into the
guest) and stops when a connection to that port on the host's 127.0.0.1 gets the program's greeting,
tried every 10 ms. The program then closes the socket, and the next sample waits until the forward is
gone. Lima's agent lists the sockets every 3 s (and on bind(), through eBPF): the target is a median of
at most 0.5 s. Rows: the cloud-init guest (through lima-guestagent) and the tiny guest (no agent: the
host agent lists its ports over SSH and forwards with ``ssh -O forward``).
"""

from __future__ import annotations

import socket
import time

from . import _env, _portfwd, _timing

ID = "B7"
TARGET_ABS = 0.5
RUNS = 15
QUICK_RUNS = 3
ROWS = (("cloud", "through the guest agent (cloud-init guest)"), ("tiny", "over SSH, no guest agent (tiny guest)"))


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def measure(g: _portfwd.Guest, runs: int) -> list[float]:
    proc = g.session("python3", "/tmp/bench.py", "listen") if g.kind == "cloud" else \
        g.session("sh", "-c", _portfwd.TINY_PROGRAM)
    assert proc.stdin is not None and proc.stdout is not None

    def say(line: str, wait: bool = True) -> None:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        if wait and proc.stdout.readline().split() != line.split()[:1]:
            raise RuntimeError(f"the guest program did not answer {line!r}")

    samples = []
    try:
        for _ in range(runs):
            port = _portfwd.free_port()
            if g.kind == "cloud":
                say(f"bind {port}")
                time.sleep(0.3)  # the bind's own listing goes by first
            started = time.perf_counter()
            say("listen" if g.kind == "cloud" else f"listen {port}", wait=False)
            deadline = started + 30
            while not _portfwd.greeted(port, timeout=2):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"guest port {port} was not forwarded within 30 s")
                time.sleep(0.01)
            samples.append(time.perf_counter() - started)
            proc.stdout.readline()
            say("close")
            deadline = time.monotonic() + 30
            while not _refused(port) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(30)
    return samples


def run(opts: _env.Options) -> list[_timing.Row]:
    rows, skipped = [], []
    runs = QUICK_RUNS if opts.quick else max(opts.runs, RUNS)
    try:
        for kind, what in ROWS:
            try:
                g = _portfwd.shared_guest(opts, kind)
            except _env.Skip as exc:
                skipped.append(f"{kind}: {exc}")
                continue
            samples = measure(g, runs)
            rows.append(_timing.Row(id=ID, what=f"guest listen() → host connection reaches it, {what}", unit="s",
                                    value=_timing.median(samples), target_abs=TARGET_ABS, samples=samples,
                                    floor="Lima: a 3 s tick (and eBPF on bind)",
                                    extra={"max_s": round(max(samples), 3), "runs": runs}, load=_timing.load()))
    finally:
        _portfwd.release(opts, ID)
    if not rows:
        raise _env.Skip("; ".join(skipped))
    return rows
