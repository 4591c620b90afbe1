"""Forwarded connections multiplexed over one agent connection (asyncio), for both ends.

A :class:`Session` is the protocol of the agent connection. Each forwarded
connection is a channel: a :class:`StreamChannel` (TCP or a unix socket)
pairs a local stream socket with the peer's; a :class:`DatagramChannel` (UDP)
carries one datagram per DATA frame.

Streams have flow control: a peer may send at most :data:`INITIAL_WINDOW`
bytes that the other end has not yet handed to its local socket, and WINDOW
frames give credit back as the local socket takes the data. So a slow local
reader never makes the agent buffer without bound, and never holds up the
other channels. EOF frames half-close (``shutdown(SHUT_WR)``), CLOSE ends a
channel (with an error text, the peer resets its socket). Datagrams have no
flow control: when the agent connection is congested they are dropped, as a
network would.
"""

import asyncio
import logging
import socket
import struct

from . import wire

INITIAL_WINDOW = 1 << 20
#: credit is given back in pieces of at least this much (or all of it when the local socket has drained)
GRANT_THRESHOLD = 64 << 10
#: the local socket's write buffer: above HIGH no credit is given back until it drains to LOW
LOCAL_HIGH_WATER = 256 << 10
LOCAL_LOW_WATER = 64 << 10
#: datagrams are dropped while the agent connection has this much waiting to be written
DATAGRAM_DROP_BACKLOG = 4 << 20
#: datagrams kept for a UDP channel whose local socket is being made
MAX_QUEUED_DATAGRAMS = 64

log = logging.getLogger("lima-guestagent")


def split_address(address):
    """``("::1", 80)`` from ``"[::1]:80"``; ``("127.0.0.1", 80)`` from ``"127.0.0.1:80"``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("not host:port: %r" % address)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def join_address(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def dial_address(address):
    """Where to connect to reach a listener on *address*: its host and port, an unspecified address
    (a socket listening on all addresses) replaced by the loopback address of its family."""
    host, port = split_address(address)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port


class Session(asyncio.Protocol):
    """One end of an agent connection: frames in and out, and the channels on it.

    Subclasses answer the control frames (:meth:`on_control`) and OPEN
    (:meth:`on_open`). *synced* False: bytes before the peer's first HELLO
    are skipped (a virtio-serial port may hold bytes of an earlier session).
    """

    def __init__(self, loop, synced=False, logger=None):
        self.loop = loop
        self.decoder = wire.Decoder(synced=synced)
        self.transport = None
        self.channels = {}
        self.closed = False
        self.log = logger or log

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            frames = self.decoder.feed(data)
            for kind, channel, payload in frames:
                self.dispatch(kind, channel, payload)
        except wire.ProtocolError as exc:
            self.protocol_error(exc)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.closed = True
        self.abort_channels()
        self.lost(exc)

    def abort_channels(self):
        """End every channel at once (their peer is gone)."""
        for channel in list(self.channels.values()):
            channel.abort()
        self.channels.clear()

    # -- for subclasses -----------------------------------------------------------------

    def on_control(self, kind, payload):
        pass

    def on_open(self, channel_id, request):
        raise wire.ProtocolError("this end does not accept OPEN")

    def lost(self, exc):
        pass

    def protocol_error(self, exc):
        """The peer said something unreadable: tell it, and end the session."""
        self.log.warning("guest agent protocol error: %s", exc)
        self.send(wire.control(wire.ERROR, {"message": str(exc)}))
        self.close()

    # -- sending --------------------------------------------------------------------------

    def send(self, data):
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def backlog(self):
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self):
        if self.transport is not None and not self.closed:
            self.transport.close()

    def dispatch(self, kind, channel_id, payload):
        if kind in wire.CONTROL:
            if channel_id != 0:
                raise wire.ProtocolError("%s on channel %d, not 0" % (wire.NAMES[kind], channel_id))
            if kind == wire.PING:
                self.send(wire.frame(wire.PONG, 0, payload))
                return
            self.on_control(kind, payload)
            return
        if channel_id == 0:
            raise wire.ProtocolError("%s on channel 0" % wire.NAMES[kind])
        if kind == wire.OPEN:
            if channel_id in self.channels:
                raise wire.ProtocolError("channel %d is already open" % channel_id)
            self.on_open(channel_id, wire.load(kind, payload))
            return
        channel = self.channels.get(channel_id)
        if channel is None:
            return  # it closed meanwhile; the peer learns from our CLOSE
        if kind == wire.DATA:
            channel.from_peer(payload)
        elif kind == wire.EOF:
            channel.peer_eof()
        elif kind == wire.CLOSE:
            channel.peer_close(str(wire.load(kind, payload).get("error") or ""))
        elif kind == wire.WINDOW:
            channel.peer_window(wire.window_increment(payload))


class StreamChannel(object):
    """A forwarded stream: the local socket's transport (once connected) and the peer's end."""

    def __init__(self, session, channel_id):
        self.session = session
        self.id = channel_id
        self.transport = None
        #: bytes we may still send to the peer
        self.credit = INITIAL_WINDOW
        #: from the local socket, waiting for credit
        self.pending = bytearray()
        #: from the peer, before the local socket is connected
        self.queued = []
        self.received = 0
        self.granted = 0
        self.eof_to_peer = False
        self.eof_sent = False
        self.eof_from_peer = False
        self.write_paused = False
        self.finished = False
        session.channels[channel_id] = self

    # -- the local socket -----------------------------------------------------------------

    def attach(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(LOCAL_HIGH_WATER, LOCAL_LOW_WATER)
        for data in self.queued:
            transport.write(data)
        self.queued = []
        if self.eof_from_peer:
            self._write_eof()
        self._grant()

    def local_data(self, data):
        if not self.pending:
            sent = self._send(data)
            if sent == len(data):
                return
            data = data[sent:]
        self.pending += data
        if self.transport is not None:
            self.transport.pause_reading()

    def local_eof(self):
        self.eof_to_peer = True
        if not self.pending:
            self._send_eof()

    def local_pause(self):
        self.write_paused = True

    def local_resume(self):
        self.write_paused = False
        self._grant(force=True)

    def local_lost(self, exc):
        """The local socket is closed: the channel is over."""
        if self.finished:
            return
        self.finished = True
        self.session.channels.pop(self.id, None)
        error = {"error": str(exc) or type(exc).__name__} if exc is not None else {}
        self.session.send(wire.control(wire.CLOSE, error, self.id))

    # -- the peer -------------------------------------------------------------------------

    def from_peer(self, data):
        self.received += len(data)
        if self.transport is None:
            self.queued.append(data)
            return
        self.transport.write(data)
        self._grant()

    def peer_eof(self):
        self.eof_from_peer = True
        if self.transport is not None:
            self._write_eof()

    def peer_window(self, increment):
        self.credit += increment
        if self.pending:
            sent = self._send(bytes(self.pending))
            del self.pending[:sent]
            if self.pending:
                return
            if self.transport is not None:
                self.transport.resume_reading()
        if self.eof_to_peer and not self.eof_sent:
            self._send_eof()

    def peer_close(self, error):
        self.finished = True
        self.session.channels.pop(self.id, None)
        if self.transport is not None:
            if error:
                _reset(self.transport)
            else:
                self.transport.close()

    def abort(self):
        """The agent connection is gone."""
        self.finished = True
        if self.transport is not None:
            self.transport.abort()

    def fail(self, error):
        """The local socket could not be connected."""
        self.finished = True
        self.session.channels.pop(self.id, None)
        self.session.send(wire.control(wire.CLOSE, {"error": error}, self.id))

    # -- internals ------------------------------------------------------------------------

    def _send(self, data):
        """Send what the credit allows of *data*; how much was sent."""
        n = min(len(data), self.credit)
        pos = 0
        while pos < n:
            chunk = data[pos:min(n, pos + wire.MAX_DATA)]
            self.session.send(wire.frame(wire.DATA, self.id, bytes(chunk)))
            pos += len(chunk)
        self.credit -= n
        return n

    def _send_eof(self):
        if not self.eof_sent:
            self.eof_sent = True
            self.session.send(wire.frame(wire.EOF, self.id))
            self._maybe_done()

    def _write_eof(self):
        transport = self.transport
        try:
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        except OSError:
            # shutdown() on a socket its peer has reset (ENOTCONN): this connection is over, the agent
            # session is not (an exception here would end it, with every other channel).
            transport.abort()
            return
        self._maybe_done()

    def _maybe_done(self):
        if self.eof_sent and self.eof_from_peer and self.transport is not None:
            self.transport.close()

    def _grant(self, force=False):
        if self.transport is None:
            return
        taken = self.received - self.transport.get_write_buffer_size() - self.granted
        if taken > 0 and (force or taken >= GRANT_THRESHOLD) and not self.write_paused:
            self.granted += taken
            self.session.send(wire.window(self.id, taken))


def _reset(transport):
    """Close a TCP connection with a reset (what its peer's failure was), any other socket plainly."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


class StreamEnd(asyncio.Protocol):
    """The protocol of a channel's local stream socket."""

    def __init__(self, channel=None):
        self.channel = channel

    def connection_made(self, transport):
        if self.channel is not None:
            self.channel.attach(transport)

    def data_received(self, data):
        self.channel.local_data(data)

    def eof_received(self):
        self.channel.local_eof()
        return True  # keep writing what the peer sends

    def pause_writing(self):
        self.channel.local_pause()

    def resume_writing(self):
        self.channel.local_resume()

    def connection_lost(self, exc):
        if self.channel is not None:
            self.channel.local_lost(exc)


class DatagramChannel(object):
    """A UDP flow: each DATA frame is one datagram. *deliver(data)* hands the peer's datagrams on."""

    def __init__(self, session, channel_id, deliver=None):
        self.session = session
        self.id = channel_id
        self.deliver = deliver
        self.transport = None
        #: datagrams from the peer before the local socket exists
        self.queued = []
        self.finished = False
        self.last_used = session.loop.time()
        session.channels[channel_id] = self

    def attach(self, transport):
        self.transport = transport
        for data in self.queued:
            transport.sendto(data)
        self.queued = []

    def local_datagram(self, data):
        self.last_used = self.session.loop.time()
        if len(data) > wire.MAX_DATA or self.session.backlog() > DATAGRAM_DROP_BACKLOG:
            return
        self.session.send(wire.frame(wire.DATA, self.id, data))

    def from_peer(self, data):
        self.last_used = self.session.loop.time()
        if self.deliver is not None:
            self.deliver(data)
        elif self.transport is not None:
            self.transport.sendto(data)
        elif len(self.queued) < MAX_QUEUED_DATAGRAMS:
            self.queued.append(data)

    def peer_eof(self):
        pass

    def peer_window(self, increment):
        pass

    def peer_close(self, error):
        self._end()

    def abort(self):
        self._end()

    def close(self, error=""):
        """End the flow from this side."""
        if not self.finished:
            self.session.send(wire.control(wire.CLOSE, {"error": error} if error else {}, self.id))
        self._end()

    def fail(self, error):
        self.close(error)

    def _end(self):
        self.finished = True
        self.session.channels.pop(self.id, None)
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class DatagramEnd(asyncio.DatagramProtocol):
    """The protocol of a channel's local (connected) UDP socket."""

    def __init__(self, channel):
        self.channel = channel

    def connection_made(self, transport):
        self.channel.attach(transport)

    def datagram_received(self, data, addr):
        self.channel.local_datagram(data)

    def error_received(self, exc):
        pass  # e.g. ECONNREFUSED from an ICMP port unreachable: UDP goes on
