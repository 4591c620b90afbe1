"""The host's listening sockets of forwards through the guest agent: TCP, UDP, unix.

Each accepted connection (each UDP client address) opens a channel on the
current guest agent session to the guest address of its forward. With no
session (the agent is not connected), a TCP or unix client is reset at once
and datagrams are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..guestagent import mux

#: a UDP flow (one client address) with no datagram either way for this long is closed
UDP_IDLE_TIMEOUT = 60.0
#: Lima's: these host ports often clash with the host's own services; failing to bind one is no news
NEGLIGIBLE = {("tcp", 53): "DNS port", ("udp", 53): "DNS port", ("udp", 323): "NTP port",
              ("udp", 5353): "mDNS port", ("udp", 5355): "LLMNR port"}


def bind_error(proto: str, address: str, exc: OSError) -> str:
    """Why binding *address* failed, for the user."""
    if exc.errno == errno.EADDRINUSE:
        return f"{address} is already in use on the host"
    if exc.errno == errno.EACCES:
        return f"binding {address} needs privileges this host agent does not have (a privileged port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{address} is not an address of this host"
    return f"cannot listen on {address}: {exc.strerror or exc}"


def negligible(proto: str, address: str, exc: OSError) -> bool:
    """Lima logs these failures at info level only: a privileged port, or a port of a common host service."""
    if exc.errno == errno.EACCES:
        return True
    try:
        port = mux.split_address(address)[1]
    except ValueError:
        return False
    return (proto, port) in NEGLIGIBLE


def inet_socket(proto: str, address: str) -> socket.socket:
    """A bound socket for *address* (``ip:port``), listening if TCP. :raises OSError:"""
    host, port = mux.split_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        if proto == "tcp":
            sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def prepare_unix_path(path: str) -> None:
    """Make way for a unix socket at *path*: its directory made (0750), a stale socket removed.

    :raises OSError: something that is not a socket is in the way.
    """
    target = Path(path)
    target.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(target.lstat().st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        target.unlink()


def unix_socket(path: str) -> socket.socket:
    """A listening unix socket at *path* (see :func:`prepare_unix_path`). :raises OSError:"""
    prepare_unix_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _StreamEnd(mux.StreamEnd):
    """An accepted host connection: a channel to *target* on the session of the moment."""

    def __init__(self, session: Callable[[], Any], proto: str, target: Callable[[], str]) -> None:
        super().__init__(None)
        self._session = session
        self._proto = proto
        self._target = target

    def connection_made(self, transport: Any) -> None:
        session = self._session()
        if session is None:
            transport.abort()
            return
        self.channel = session.open_stream(self._proto, self._target())
        self.channel.attach(transport)


class _DatagramEnd(asyncio.DatagramProtocol):
    """A host UDP socket: one channel per client address, closed when idle."""

    def __init__(self, session: Callable[[], Any], target: Callable[[], str]) -> None:
        self._session = session
        self._target = target
        self.transport: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.flows: dict[Any, mux.DatagramChannel] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        session = self._session()
        if session is None:
            return
        self._loop = session.loop
        flow = self.flows.get(addr)
        if flow is None or flow.finished or flow.session is not session:
            flow = session.open_datagram(self._target(), lambda d, a=addr: self._reply(d, a))
            self.flows[addr] = flow
            if self._sweeper is None:
                self._sweeper = session.loop.call_later(UDP_IDLE_TIMEOUT / 2, self._sweep)
        flow.local_datagram(data)

    def _reply(self, data: bytes, addr: Any) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = self._loop
        assert loop is not None
        for addr, flow in list(self.flows.items()):
            if flow.finished:
                del self.flows[addr]
            elif loop.time() - flow.last_used > UDP_IDLE_TIMEOUT:
                flow.close()
                del self.flows[addr]
        if self.flows:
            self._sweeper = loop.call_later(UDP_IDLE_TIMEOUT / 2, self._sweep)

    def error_received(self, exc: Exception) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for flow in self.flows.values():
            flow.close()
        self.flows.clear()


class Listener:
    """One host listening socket of a forward, served on the loop until :meth:`close`."""

    def __init__(self, server: Any = None, transport: Any = None, path: str = "") -> None:
        self._server = server
        self._transport = transport
        self._path = path

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._transport is not None:
            self._transport.close()
        if self._path:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(self._path).st_mode):
                    os.unlink(self._path)


async def listen(loop: asyncio.AbstractEventLoop, proto: str, host: str, guest_proto: str,
                 session: Callable[[], Any], target: Callable[[], str]) -> Listener:
    """Listen on *host* (``ip:port`` for tcp/udp, a path for a unix socket) and carry each connection to
    ``target()`` in the guest over ``session()`` (*guest_proto*: "tcp", "udp" or "unix").

    :raises OSError: the host socket cannot be had.
    """
    if proto == "udp":
        sock = inet_socket("udp", host)
        transport, _ = await loop.create_datagram_endpoint(lambda: _DatagramEnd(session, target), sock=sock)
        return Listener(transport=transport)
    if host.startswith("/"):
        sock = unix_socket(host)
        server = await loop.create_unix_server(lambda: _StreamEnd(session, guest_proto, target), sock=sock)
        return Listener(server=server, path=host)
    sock = inet_socket("tcp", host)
    server = await loop.create_server(lambda: _StreamEnd(session, guest_proto, target), sock=sock)
    return Listener(server=server)
