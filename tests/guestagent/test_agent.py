"""The guest agent run on the host, talked to as the host agent does: sessions, listener reports, and
forwarded TCP, UDP and unix-socket connections through host listeners."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from agentkit import AgentProcess, Host, free_port

from lima_core.guestagent import wire


def test_hello_then_every_listener_then_each_change(start_agent, host: Host) -> None:
    before = socket.socket()
    before.bind(("127.0.0.1", 0))
    before.listen()
    agent = start_agent("--no-trigger", "--tick", "0.05")
    info = host.connect(agent.socket)
    assert info["version"] == wire.PROTOCOL_VERSION and info["discovery"] == {"tcp": "sock_diag", "udp": "sock_diag"}
    assert info["trigger"] == "none (disabled)"
    port = before.getsockname()[1]
    host.wait_for(lambda s: ("tcp", "127.0.0.1", port) in s)
    assert ("tcp", "127.0.0.1", port) in host.reports[0][0], "the first report holds every listener"

    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.bind(("::1", 0))
    uport = udp.getsockname()[1]
    host.wait_for(lambda s: ("udp", "::1", uport) in s)
    before.close()
    udp.close()
    host.wait_for(lambda s: ("tcp", "127.0.0.1", port) not in s and ("udp", "::1", uport) not in s)
    assert host.call(host.session.ping(5)) < 5
    assert agent.stop() == 0


def test_a_host_speaking_another_version_is_refused(start_agent, host: Host) -> None:
    agent = start_agent("--no-trigger")
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(agent.socket))
    sock.sendall(wire.hello({"versions": [99]}))
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    (kind, _ch, payload), = wire.Decoder().feed(data)
    assert kind == wire.ERROR and "speaks protocol version 1" in wire.load(kind, payload)["message"]


def test_bytes_before_the_hello_are_skipped(start_agent) -> None:
    agent = start_agent("--no-trigger")
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(agent.socket))
    sock.sendall(b"\x11\x00\x00\x00\x05\x00\x00\x10leftovers of an earlier session" + wire.hello({"versions": [1]})
                 + wire.frame(wire.PING, 0, b"abc"))
    dec = wire.Decoder(synced=False)
    frames: list = []
    sock.settimeout(10)
    while not any(k == wire.PONG for k, _, _ in frames):
        frames += dec.feed(sock.recv(65536))
    assert frames[0][0] == wire.HELLO
    assert (wire.PONG, 0, b"abc") in frames


def _server(handle: Callable[[socket.socket], None]) -> tuple[socket.socket, int]:
    """A TCP server on 127.0.0.1 (until closed), each connection handled by *handle* in a thread of its own."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def _echo_server() -> tuple[socket.socket, int]:
    return _server(_echo)


def _echo(conn: socket.socket) -> None:
    digest = hashlib.sha256()
    size = 0
    while data := conn.recv(65536):
        digest.update(data)
        size += len(data)
        if size <= 1 << 16:
            conn.sendall(data)
    conn.sendall(f"\n{size} {digest.hexdigest()}".encode())  # after the client's EOF: half-close works
    conn.close()


def _drain(sock: socket.socket) -> bytes:
    out = b""
    while data := sock.recv(1 << 20):
        out += data
    return out


def test_tcp_through_a_host_listener_half_close_and_bulk(start_agent, host: Host) -> None:
    agent = start_agent("--no-trigger")
    host.connect(agent.socket)
    srv, port = _echo_server()
    hport = free_port()
    listener = host.forward("tcp", f"127.0.0.1:{hport}", "tcp", f"0.0.0.0:{port}")  # any-address: dialed as loopback
    try:
        c = socket.create_connection(("127.0.0.1", hport))
        c.sendall(b"hello")
        c.shutdown(socket.SHUT_WR)
        assert _drain(c) == b"hello\n5 " + hashlib.sha256(b"hello").hexdigest().encode()

        # More than the window many times over, in both directions at once: flow control keeps it moving.
        blob = os.urandom(24 << 20)
        c = socket.create_connection(("127.0.0.1", hport))
        sender = threading.Thread(target=lambda: (c.sendall(blob), c.shutdown(socket.SHUT_WR)))
        sender.start()
        got = _drain(c)
        sender.join()
        assert got == blob[:1 << 16] + f"\n{len(blob)} {hashlib.sha256(blob).hexdigest()}".encode()
    finally:
        listener.close()
        srv.close()


def test_a_slow_reader_does_not_hold_up_other_connections(start_agent, host: Host) -> None:
    agent = start_agent("--no-trigger")
    host.connect(agent.socket)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def flood() -> None:
        conn, _ = srv.accept()
        try:
            while True:
                conn.sendall(b"y" * 65536)
        except OSError:
            pass

    threading.Thread(target=flood, daemon=True).start()
    esrv, eport = _echo_server()
    slow_port, echo_port = free_port(), free_port()
    listeners = [host.forward("tcp", f"127.0.0.1:{slow_port}", "tcp", f"127.0.0.1:{port}"),
                 host.forward("tcp", f"127.0.0.1:{echo_port}", "tcp", f"127.0.0.1:{eport}")]
    try:
        slow = socket.create_connection(("127.0.0.1", slow_port))  # never read: its window fills
        time.sleep(1.0)
        c = socket.create_connection(("127.0.0.1", echo_port))
        c.settimeout(10)
        c.sendall(b"ping")
        assert c.recv(4) == b"ping"
        # The agent holds at most the window for the stalled one, not everything the server sent.
        rss = int(open(f"/proc/{agent.proc.pid}/status").read().split("VmRSS:")[1].split()[0])
        assert rss < 80_000, f"the agent's RSS grew to {rss} KiB"
        slow.close()
        c.close()
    finally:
        for listener in listeners:
            listener.close()
        srv.close()
        esrv.close()


def test_a_refused_connection_is_reset_on_the_host(start_agent, host: Host) -> None:
    agent = start_agent("--no-trigger")
    host.connect(agent.socket)
    hport = free_port()
    listener = host.forward("tcp", f"127.0.0.1:{hport}", "tcp", f"127.0.0.1:{free_port()}")
    try:
        c = socket.create_connection(("127.0.0.1", hport))
        c.settimeout(10)
        with pytest.raises(ConnectionResetError):
            c.recv(1)
    finally:
        listener.close()


def test_connections_that_end_abruptly_on_either_side_leave_the_session_up(start_agent, host: Host) -> None:
    """A greeting server in the guest closes at once, host clients reset theirs at once: a half-close
    arriving for a socket whose peer is already gone ends that connection, never the agent session."""
    agent = start_agent("--no-trigger")
    host.connect(agent.socket)

    def greet(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client may have reset it already
            conn.sendall(b"e")
            conn.shutdown(socket.SHUT_WR)

    srv, port = _server(greet)
    hport = free_port()
    listener = host.forward("tcp", f"127.0.0.1:{hport}", "tcp", f"127.0.0.1:{port}")
    session = host.session
    assert session is not None
    try:
        for i in range(60):
            c = socket.create_connection(("127.0.0.1", hport), timeout=10)
            if i % 2:
                c.recv(1)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closed with a reset
            c.close()
        c = socket.create_connection(("127.0.0.1", hport), timeout=10)
        assert c.recv(1) == b"e"
        c.close()
        assert host.call(session.ping(10)) < 10
        assert not session.closed and host.errors == []
    finally:
        listener.close()
        srv.close()


def test_udp_flows(start_agent, host: Host) -> None:
    agent = start_agent("--no-trigger")
    host.connect(agent.socket)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                data, addr = srv.recvfrom(65536)
            except OSError:
                return
            srv.sendto(data.upper() + f" from {addr[0]}".encode(), addr)

    threading.Thread(target=serve, daemon=True).start()
    hport = free_port(socket.SOCK_DGRAM)
    listener = host.forward("udp", f"127.0.0.1:{hport}", "udp", f"127.0.0.1:{port}")
    try:
        clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for i, c in enumerate(clients):
            c.settimeout(10)
            c.sendto(f"datagram {i}".encode(), ("127.0.0.1", hport))
        for i, c in enumerate(clients):
            assert c.recvfrom(65536)[0] == f"DATAGRAM {i} from 127.0.0.1".encode()
        big = b"b" * 60000  # one datagram, boundaries kept
        clients[0].sendto(big, ("127.0.0.1", hport))
        assert len(clients[0].recvfrom(65536)[0]) == len(big) + len(" from 127.0.0.1")
    finally:
        listener.close()
        srv.close()


def _unix_server(path: Path) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            conn.sendall(b"uid %d" % struct.unpack("3i", creds)[1])
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_unix_sockets_forwarded_to_a_host_socket(start_agent, host: Host, short_tmp: Path) -> None:
    agent = start_agent("--no-trigger")
    host.connect(agent.socket)
    srv = _unix_server(short_tmp / "guest.sock")
    hsock = short_tmp / "host" / "dir" / "docker.sock"
    listener = host.forward("unix", str(hsock), "unix", str(short_tmp / "guest.sock"))
    try:
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(hsock))
        assert _drain(c) == b"uid %d" % os.getuid()
    finally:
        listener.close()
        srv.close()
    assert not hsock.exists(), "closing the forward removes the host socket"


@pytest.mark.skipif(os.geteuid() != 0, reason="the agent connects as the user only when it runs as root")
def test_unix_sockets_are_reached_with_the_users_permissions(start_agent, host: Host, short_tmp: Path) -> None:
    agent = start_agent("--no-trigger", "--user", "nobody")
    host.connect(agent.socket)
    os.chmod(short_tmp, 0o755)
    open_sock, root_only = short_tmp / "open.sock", short_tmp / "root.sock"
    servers = [_unix_server(open_sock), _unix_server(root_only)]
    os.chmod(open_sock, 0o666)
    os.chmod(root_only, 0o600)
    hopen, hroot = short_tmp / "h-open.sock", short_tmp / "h-root.sock"
    listeners = [host.forward("unix", str(hopen), "unix", str(open_sock)),
                 host.forward("unix", str(hroot), "unix", str(root_only))]
    try:
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(hopen))
        assert _drain(c) == b"uid 65534"  # the server sees the user, not root
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(hroot))
        c.settimeout(10)
        assert c.recv(1) == b""  # refused: closed at once (a unix socket has no reset)
        assert "Permission denied" not in agent.log.read_text()  # the refusal goes to the host, not the log
    finally:
        for x in listeners + servers:
            x.close()


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/sys/kernel/tracing/instances").is_dir(),
                    reason="needs root and tracefs")
def test_the_tracepoint_trigger_reports_a_listener_at_once_and_cleans_up(start_agent, host: Host) -> None:
    agent = start_agent("--idle-tick", "30")  # the periodic listing cannot be what reports it
    info = host.connect(agent.socket)
    assert info["trigger"] == "tracefs" and info["tick"] == 30
    instance = Path("/sys/kernel/tracing/instances/lima-guestagent")
    assert instance.is_dir()
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        time.sleep(0.1)
        s.listen()
        assert host.wait_for(lambda now, p=port: ("tcp", "127.0.0.1", p) in now, timeout=5) < 1.0
        s.close()
        assert host.wait_for(lambda now, p=port: ("tcp", "127.0.0.1", p) not in now, timeout=5) < 1.0
    assert agent.stop() == 0
    assert not instance.exists(), "SIGTERM removes the tracing instance"


def test_a_second_session_gets_the_whole_set(start_agent) -> None:
    agent: AgentProcess = start_agent("--no-trigger")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    hosts = [Host(), Host()]
    try:
        for h in hosts:
            h.connect(agent.socket)
            h.wait_for(lambda now: ("tcp", "127.0.0.1", port) in now)
    finally:
        for h in hosts:
            h.close()
        s.close()


def test_the_virtio_transport_over_a_socketpair(host: Host) -> None:
    """FdTransport (what serves a virtio-serial port) with partial writes, and the end of the host's side."""
    import asyncio

    from lima_core.guestagent import daemon

    guest_end, host_end = socket.socketpair()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    blob = os.urandom(8 << 20)
    threading.Thread(target=lambda: srv.accept()[0].sendall(blob), daemon=True).start()
    done = threading.Event()

    def guest() -> None:
        loop = asyncio.new_event_loop()
        agent = daemon.Agent(loop, daemon.ports.Lister(), tick=5, use_trigger=False)
        ended = loop.create_future()
        guest_end.setblocking(False)
        daemon.FdTransport(loop, guest_end.fileno(), agent.session("virtio"), ended)
        loop.run_until_complete(ended)
        loop.close()
        done.set()

    threading.Thread(target=guest, daemon=True).start()

    async def connect() -> dict:
        from lima_core.hostagent import gaclient

        _t, host.session = await host.loop.create_connection(
            lambda: gaclient.HostSession(host.loop, host._ports, host.errors.append), sock=host_end)
        return await host.session.hello

    assert host.call(connect())["version"] == 1
    hport = free_port()
    listener = host.forward("tcp", f"127.0.0.1:{hport}", "tcp", f"127.0.0.1:{srv.getsockname()[1]}")
    try:
        c = socket.create_connection(("127.0.0.1", hport))
        time.sleep(0.5)  # the guest end fills the socketpair: writes return short, then EAGAIN
        got = b""
        while len(got) < len(blob):
            got += c.recv(1 << 20)
        assert got == blob
    finally:
        listener.close()
        srv.close()
    host.loop.call_soon_threadsafe(host.session.close)
    assert done.wait(10), "the guest's transport saw the host side close"


def test_the_first_report_comes_even_when_nothing_listens(start_agent, host: Host, short_tmp: Path) -> None:
    """It is the whole set: a host agent that reconnects learns from it that every earlier listener went."""
    tables = short_tmp / "net"
    tables.mkdir()
    agent = start_agent("--proc-net", str(tables))
    host.connect(agent.socket)
    deadline = time.monotonic() + 10
    while not host.reports and time.monotonic() < deadline:
        time.sleep(0.02)
    assert host.reports == [(set(), set())]
