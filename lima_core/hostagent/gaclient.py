"""The host agent's end of the guest agent protocol, and how it reaches the agent through the driver.

:func:`dial` gets a connected socket the way Lima's host agent does: when
the driver's ``forward_guest_agent`` says so, ``<inst>/ga.sock`` is forwarded
over the SSH ControlMaster to the agent's unix socket in the guest;
otherwise the driver's ``guest_agent_conn`` gives the connection, or None to
say "dial ga.sock" (an external driver bridges its connection there, qemu's
virtio-serial port is a socket there). :class:`HostSession` then speaks the
protocol of :mod:`lima_core.guestagent.wire` on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import filenames, host
from ..errors import LimaError
from ..guestagent import SOCKET, VERSION, mux, wire
from . import sshforward

log = logging.getLogger("lima_core.hostagent")

#: Lima's watcher probes the agent this often
PING_INTERVAL = 10.0
#: a connection on which the agent's HELLO does not come within this long is dropped and made again: a
#: HELLO the guest never read (a virtio-serial port discards what its previous reader left) gets no answer
HELLO_TIMEOUT = 10.0
#: a session from which nothing at all arrives for this long after a ping is dropped (generous: a guest
#: emulated on a busy host can take seconds to answer)
PING_TIMEOUT = 60.0


class AgentUnreachable(LimaError):
    """No connection to the guest agent (yet)."""


def dial(driver: host.DriverHost, inst_dir: Path, name: str, forward: bool, timeout: float = 5.0) -> socket.socket:
    """A socket connected to the guest agent's transport (the agent itself may not be listening yet).

    :raises AgentUnreachable: why there is no connection.
    """
    path = inst_dir / filenames.GUEST_AGENT_SOCK
    if forward:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        try:
            sshforward.forward(inst_dir, name, f"{path}:{SOCKET}", replace=True)
        except sshforward.ForwardFailed as exc:
            raise AgentUnreachable(f"forwarding {path} over SSH: {exc}") from None
    else:
        try:
            result = driver.guest_agent_conn()
        except LimaError as exc:
            raise AgentUnreachable(exc.message) from None
        if result is not None:
            sock, _kind = result
            return sock
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise AgentUnreachable(f"cannot connect to {path}: {exc.strerror or exc}") from None
    return sock


class HostSession(mux.Session):
    """The host's end: says HELLO, hears the guest's listeners, opens channels for forwarded connections."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_ports: Callable[[set, set, bool], None],
                 on_error: Callable[[str], None]) -> None:
        super().__init__(loop, synced=False, logger=log)
        self.on_ports = on_ports
        self.on_error = on_error
        self.hello: asyncio.Future = loop.create_future()
        self.ended: asyncio.Future = loop.create_future()
        self.info: dict[str, Any] = {}
        self._next_channel = 1
        self._pings: dict[bytes, asyncio.Future] = {}
        #: loop time of the last bytes from the agent
        self.last_heard = loop.time()
        #: the next PORTS is the whole set (the agent follows each HELLO of its own with it)
        self._whole = True

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._say_hello()

    def _say_hello(self) -> None:
        self.send(wire.hello({"versions": [wire.PROTOCOL_VERSION], "host": f"lima-core {VERSION}"}))

    def data_received(self, data: bytes) -> None:
        self.last_heard = self.loop.time()
        super().data_received(data)

    def on_control(self, kind: int, payload: bytes) -> None:
        if kind == wire.HELLO:
            info = wire.load(kind, payload)
            if info.get("version") != wire.PROTOCOL_VERSION:
                raise wire.ProtocolError(f"the guest agent answered with protocol version {info.get('version')!r}, "
                                         f"not {wire.PROTOCOL_VERSION}")
            self._whole = True
            if info.get("announce"):
                # The agent has just opened its end of a virtio-serial port, which outlives its readers: what
                # was said before went to a previous reader (an agent since restarted), its channels with it.
                log.debug("the guest agent (pid %s) opened its port: greeting it again", info.get("pid"))
                self.abort_channels()
                self._say_hello()
                return
            self.info = info
            if not self.hello.done():
                self.hello.set_result(info)
        elif kind == wire.PORTS:
            obj = wire.load(kind, payload)
            whole, self._whole = self._whole, False
            self.on_ports(_listeners(obj.get("added")), _listeners(obj.get("removed")), whole)
        elif kind == wire.ERROR:
            message = str(wire.load(kind, payload).get("message") or "")
            if not self.hello.done():
                self.hello.set_exception(AgentUnreachable(f"the guest agent refused the session: {message}"))
            else:
                self.on_error(message)
        elif kind == wire.PONG:
            waiter = self._pings.pop(payload, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def lost(self, exc: Exception | None) -> None:
        if not self.hello.done():
            self.hello.set_exception(AgentUnreachable(f"the connection closed{f': {exc}' if exc else ''}"))
        if not self.ended.done():
            self.ended.set_result(exc)
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("the guest agent connection closed"))
        self._pings.clear()

    async def ping(self, timeout: float) -> float:
        """Seconds for a PING to come back. :raises asyncio.TimeoutError, ConnectionError:"""
        token = f"{time.monotonic_ns()}".encode()
        waiter = self.loop.create_future()
        self._pings[token] = waiter
        started = time.perf_counter()
        self.send(wire.frame(wire.PING, 0, token))
        try:
            await asyncio.wait_for(waiter, timeout)
        finally:
            self._pings.pop(token, None)
        return time.perf_counter() - started

    def open_stream(self, proto: str, address: str) -> mux.StreamChannel:
        """A channel to *address* in the guest (``proto`` "tcp" or "unix"); attach the local socket to it."""
        channel = mux.StreamChannel(self, self._take_id())
        self.send(wire.control(wire.OPEN, {"proto": proto, "address": address}, channel.id))
        return channel

    def open_datagram(self, address: str, deliver: Callable[[bytes], None]) -> mux.DatagramChannel:
        channel = mux.DatagramChannel(self, self._take_id(), deliver)
        self.send(wire.control(wire.OPEN, {"proto": "udp", "address": address}, channel.id))
        return channel

    def _take_id(self) -> int:
        channel_id = self._next_channel
        self._next_channel += 1
        return channel_id


def _listeners(items: Any) -> set[tuple[str, str, int]]:
    out = set()
    for item in items or []:
        try:
            proto, ip, port = item
            out.add((str(proto), str(ip), int(port)))
        except (TypeError, ValueError):
            raise wire.ProtocolError(f"a PORTS entry must be [proto, ip, port], not {item!r}") from None
    return out
