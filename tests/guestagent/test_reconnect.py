"""The host agent keeps its guest agent session across what a virtio-serial port does: the port outlives
its readers in the guest and discards what a reader left unread, so a HELLO can go to an agent that then
exits. A restarted agent announces itself and is greeted again; a connection whose HELLO gets no answer
at all is made again.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from pathlib import Path

from agentkit import AgentProcess, free_port

from lima_core.guestagent import wire
from lima_core.hostagent import gaclient, portfwd, portrules


class _Driver:
    """What port forwarding asks of the driver: no SSH forward of the agent, no connection of its own
    (so ga.sock is dialed)."""

    name = "relay"

    def forward_guest_agent(self) -> bool:
        return False

    def guest_agent_conn(self) -> None:
        return None


class _Relay:
    """A unix socket at *path*: connection 1 is read and never answered; the others are piped to *agent*."""

    def __init__(self, path: Path, agent: Path) -> None:
        self.agent = agent
        self.accepted = 0
        self.first_closed = threading.Event()
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            target = self._swallow if self.accepted == 1 else self._pipe
            threading.Thread(target=target, args=(conn,), daemon=True).start()

    def _swallow(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while conn.recv(65536):
                pass
        self.first_closed.set()

    def _pipe(self, conn: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX)
        upstream.connect(str(self.agent))

        def copy(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
                dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=copy, args=(upstream, conn), daemon=True).start()
        copy(conn, upstream)


def test_an_unanswered_hello_is_followed_by_a_new_connection(short_tmp: Path, monkeypatch) -> None:
    """A relay stands for QEMU's chardev socket (``<inst>/ga.sock``): its first connection swallows
    everything, the later ones reach a real agent."""
    monkeypatch.setattr(gaclient, "HELLO_TIMEOUT", 1.0)
    monkeypatch.setattr(portfwd, "AGENT_RETRY", 0.1)
    (short_tmp / "agent").mkdir()
    agent = AgentProcess(short_tmp / "agent", "--no-trigger", "--tick", "0.05")
    relay = _Relay(short_tmp / "ga.sock", agent.socket)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    guest_port, host_port = server.getsockname()[1], free_port()
    # Only the server above is forwarded (the agent runs on this host and sees all of its listeners).
    rules = [portrules.Rule(0, guest_ports=(guest_port, guest_port), host_ports=(host_port, host_port)),
             portrules.Rule(1, ignore=True, guest_ip=ipaddress.ip_address("0.0.0.0"))]
    pf = portfwd.PortForwarding(inst_dir=short_tmp, name="relay", driver=_Driver(), rules=rules, plain=False,
                                skip_sockets=False, little_endian=True, emit=lambda **kw: None,
                                can_run_agent=lambda: True)
    pf.start()
    try:
        assert pf.wait_agent(20), pf.status()
        assert relay.first_closed.wait(5), "the host agent kept the connection that never answered"
        assert relay.accepted == 2
        deadline = time.monotonic() + 10
        while [f["hostAddr"] for f in pf.status()["portForwards"]] != [f"127.0.0.1:{host_port}"]:
            assert time.monotonic() < deadline, pf.status()
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", host_port), timeout=10) as c:
            conn, _ = server.accept()
            conn.sendall(b"through the second connection")
            assert c.recv(100) == b"through the second connection"
            conn.close()
    finally:
        pf.stop()
        server.close()
        relay.server.close()
        agent.stop()


def test_an_agent_that_reopens_its_port_is_greeted_again(host) -> None:
    """A scripted guest on a socketpair: an agent answers, then a new one announces itself on the same
    stream (a restarted agent reopening the virtio-serial port). The host greets it again, drops the
    channels of the old one, and takes its first report as the whole set."""
    guest, host_end = socket.socketpair()
    guest.settimeout(10)
    decoder = wire.Decoder(synced=False)
    frames: list = []

    def next_frame(kind: int) -> tuple:
        while True:
            while frames:
                frame = frames.pop(0)
                if frame[0] == kind:
                    return frame
            frames.extend(decoder.feed(guest.recv(65536)))

    def answer(pid: int, listeners: list) -> None:
        next_frame(wire.HELLO)
        guest.sendall(wire.hello({"version": 1, "agent": "test", "pid": pid})
                      + wire.control(wire.PORTS, {"added": listeners, "removed": []}))

    async def connect() -> gaclient.HostSession:
        _t, host.session = await host.loop.create_connection(
            lambda: gaclient.HostSession(host.loop, host._ports, host.errors.append), sock=host_end)
        return host.session

    session = host.call(connect())
    answer(1, [["tcp", "127.0.0.1", 8080], ["udp", "0.0.0.0", 5353]])
    host.wait_for(lambda now: ("tcp", "127.0.0.1", 8080) in now)
    session.loop.call_soon_threadsafe(session.open_stream, "tcp", "127.0.0.1:8080")
    next_frame(wire.OPEN)
    assert len(session.channels) == 1
    guest.sendall(wire.hello({"version": 1, "agent": "test", "pid": 2, "announce": True}))
    answer(2, [["tcp", "127.0.0.1", 9090]])
    host.wait_for(lambda now: now == {("tcp", "127.0.0.1", 9090)})
    assert host.reports[-1] == ({("tcp", "127.0.0.1", 9090)}, set())
    assert session.info["pid"] == 2 and session.channels == {} and not session.closed
    guest.close()
