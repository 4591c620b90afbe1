"""sshutil.wait_banner and hostagent.readiness.boot_done: how the host agent tells that the guest's SSH server is up,
without waiting out ssh."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lima_core import sshutil
from lima_core.hostagent import readiness


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s
    s.close()


def serve(listener: socket.socket, reply: bytes | None, delay: float = 0.0) -> threading.Thread:
    """Accept connections; send *reply* after *delay* (None: hold them silently, as QEMU's slirp does)."""
    held: list[socket.socket] = []

    def run() -> None:
        listener.settimeout(0.2)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            if reply is not None:
                time.sleep(delay)
                conn.sendall(reply)
        for c in held:
            c.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_banner_is_seen(listener: socket.socket) -> None:
    serve(listener, b"SSH-2.0-dropbear\r\n", delay=0.2)
    started = time.monotonic()
    assert sshutil.wait_banner("127.0.0.1", listener.getsockname()[1], timeout=3) is sshutil.Banner.SEEN
    assert time.monotonic() - started < 2


def test_a_held_connection_is_not_a_server(listener: socket.socket) -> None:
    serve(listener, None)
    started = time.monotonic()
    assert sshutil.wait_banner("127.0.0.1", listener.getsockname()[1], timeout=1.0) is sshutil.Banner.SILENT
    assert 0.9 < time.monotonic() - started < 3


def test_refused_ends_the_wait_at_once() -> None:
    """Nothing listens (QEMU not up yet, or an ssh that goes elsewhere): ssh can find out as fast."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    assert sshutil.wait_banner("127.0.0.1", port, timeout=5) is sshutil.Banner.ANSWERED
    assert time.monotonic() - started < 1


def test_held_connections_then_a_banner(listener: socket.socket) -> None:
    """QEMU's slirp: connections are held while the guest boots; a later one gets the banner."""
    opened = time.monotonic() + 0.8
    held: list[socket.socket] = []

    def run() -> None:
        listener.settimeout(0.1)
        while time.monotonic() < opened + 3:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            if time.monotonic() >= opened:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    threading.Thread(target=run, daemon=True).start()
    started = time.monotonic()
    try:
        assert sshutil.wait_banner("127.0.0.1", listener.getsockname()[1], timeout=5,
                                   interval=0.1) is sshutil.Banner.SEEN
        assert 0.7 < time.monotonic() - started < 2
    finally:
        for c in held:
            c.close()


def test_give_up(listener: socket.socket) -> None:
    serve(listener, None)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert sshutil.wait_banner("127.0.0.1", listener.getsockname()[1], timeout=10,
                               give_up=stop.is_set) is sshutil.Banner.SILENT
    assert time.monotonic() - started < 2


def test_a_closed_connection_is_an_answer(listener: socket.socket) -> None:
    """The guest's network is up but its SSH server is not: QEMU passes on the guest's reset."""
    def run() -> None:
        listener.settimeout(2)
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    assert sshutil.wait_banner("127.0.0.1", listener.getsockname()[1], timeout=5) is sshutil.Banner.ANSWERED


def _recording_ssh(tmp_path: Path) -> tuple[list[str], Path]:
    """A stand-in for the ssh command: records that it ran, prints an instance id."""
    calls = tmp_path / "calls"
    script = tmp_path / "ssh"
    script.write_text(f"#!/bin/sh\necho run >> {calls}\necho iid-1\n")
    script.chmod(0o755)
    return [str(script)], calls


def test_boot_done_runs_no_ssh_on_a_silent_port(listener: socket.socket, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """ssh would be held for its whole ConnectTimeout there, as the connections were."""
    monkeypatch.setattr(readiness, "SSH_CONNECT_TIMEOUT", 0.5)
    serve(listener, None)
    ssh, calls = _recording_ssh(tmp_path)
    assert readiness.boot_done(ssh, "127.0.0.1", listener.getsockname()[1]) is None
    assert not calls.exists()


@pytest.mark.parametrize("reply", [b"SSH-2.0-dropbear\r\n", b""])
def test_boot_done_runs_ssh_once_the_port_answers(listener: socket.socket, tmp_path: Path, reply: bytes) -> None:
    """A banner, or a close (ssh then says what is wrong as fast as the port did)."""
    def run() -> None:
        listener.settimeout(2)
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            conn.sendall(reply)
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    ssh, calls = _recording_ssh(tmp_path)
    assert readiness.boot_done(ssh, "127.0.0.1", listener.getsockname()[1]) == "iid-1"
    assert calls.read_text() == "run\n"
