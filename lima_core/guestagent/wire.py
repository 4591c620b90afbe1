"""Frames of the guest agent protocol (version 1; docs/guest-agent.md).

Every frame is a 9-byte header, then the payload::

    kind (1 byte) | channel (4 bytes, big-endian) | length (4 bytes, big-endian) | payload

Channel 0 carries the control frames (HELLO, ERROR, PORTS, PING, PONG), whose
payload is UTF-8 JSON; HELLO's JSON follows the 8 bytes of :data:`MAGIC`.
Channels 1 and up are forwarded connections, opened by the host (OPEN) and
carrying DATA, EOF, CLOSE and WINDOW frames.

Until a peer has seen the other's HELLO it skips any bytes before one: a
virtio-serial port is a byte stream that outlives its connections, so bytes
of an earlier session may still be in it when a new session begins.
"""

import json
import struct

PROTOCOL_VERSION = 1

HEADER = struct.Struct("!BII")
#: every HELLO payload starts with these bytes
MAGIC = b"LIMA-GA\n"
#: a larger payload is a protocol error (DATA frames carry at most MAX_DATA)
MAX_PAYLOAD = 1 << 20
MAX_DATA = 256 << 10

HELLO = 0x01
ERROR = 0x02
PORTS = 0x03
PING = 0x04
PONG = 0x05
OPEN = 0x10
DATA = 0x11
EOF = 0x12
CLOSE = 0x13
WINDOW = 0x14

NAMES = {HELLO: "HELLO", ERROR: "ERROR", PORTS: "PORTS", PING: "PING", PONG: "PONG", OPEN: "OPEN", DATA: "DATA",
         EOF: "EOF", CLOSE: "CLOSE", WINDOW: "WINDOW"}
CONTROL = frozenset((HELLO, ERROR, PORTS, PING, PONG))
_WINDOW = struct.Struct("!I")


class ProtocolError(Exception):
    """The peer sent something this version cannot read."""


def frame(kind, channel=0, payload=b""):
    return HEADER.pack(kind, channel, len(payload)) + payload


def control(kind, obj, channel=0):
    """A frame whose payload is *obj* as JSON."""
    return frame(kind, channel, json.dumps(obj, separators=(",", ":")).encode())


def hello(obj):
    return frame(HELLO, 0, MAGIC + json.dumps(obj, separators=(",", ":")).encode())


def window(channel, increment):
    return frame(WINDOW, channel, _WINDOW.pack(increment))


def window_increment(payload):
    if len(payload) != _WINDOW.size:
        raise ProtocolError("a WINDOW frame carries 4 bytes, not %d" % len(payload))
    return _WINDOW.unpack(payload)[0]


def load(kind, payload):
    """The JSON of a control (or OPEN/CLOSE) frame; HELLO without its magic."""
    if kind == HELLO:
        if not payload.startswith(MAGIC):
            raise ProtocolError("a HELLO frame must start with %r" % MAGIC)
        payload = payload[len(MAGIC):]
    if not payload:
        return {}
    try:
        obj = json.loads(payload.decode("utf-8"))
    except ValueError as exc:
        raise ProtocolError("%s frame: bad JSON (%s)" % (NAMES.get(kind, kind), exc)) from None
    if not isinstance(obj, dict):
        raise ProtocolError("%s frame: the JSON must be an object" % NAMES.get(kind, kind))
    return obj


class Decoder(object):
    """Frames from a byte stream, fed in pieces.

    An unsynced decoder (``synced=False``) drops bytes until the start of a
    HELLO frame; :meth:`resync` returns it to that state.
    """

    def __init__(self, synced=True):
        self.synced = synced
        self._buf = bytearray()
        self._pos = 0

    def resync(self):
        self.synced = False
        del self._buf[:self._pos]
        self._pos = 0

    def feed(self, data):
        """The complete frames in *data* and what came before it: a list of (kind, channel, payload).

        :raises ProtocolError: an unknown kind or an oversized frame (the
            decoder keeps its place; call :meth:`resync` to go on).
        """
        buf = self._buf
        buf += data
        out = []
        while True:
            if not self.synced and not self._sync():
                break
            pos = self._pos
            if len(buf) - pos < HEADER.size:
                break
            kind, channel, length = HEADER.unpack_from(buf, pos)
            if kind not in NAMES:
                raise ProtocolError("unknown frame kind 0x%02x" % kind)
            if length > MAX_PAYLOAD:
                raise ProtocolError("a %s frame of %d bytes is larger than %d" % (NAMES[kind], length, MAX_PAYLOAD))
            end = pos + HEADER.size + length
            if len(buf) < end:
                break
            out.append((kind, channel, bytes(buf[pos + HEADER.size:end])))
            self._pos = end
        if self._pos > 65536 or self._pos == len(buf):
            del buf[:self._pos]
            self._pos = 0
        return out

    def _sync(self):
        """Move to the first HELLO frame in the buffer; False if there is none yet."""
        buf = self._buf
        start = self._pos
        while True:
            at = buf.find(MAGIC, start + HEADER.size)
            if at < 0:
                # Keep what could be the beginning of a HELLO frame.
                keep = max(self._pos, len(buf) - HEADER.size - len(MAGIC))
                del buf[:keep]
                self._pos = 0
                return False
            head = at - HEADER.size
            kind, channel, length = HEADER.unpack_from(buf, head)
            if kind == HELLO and channel == 0 and len(MAGIC) <= length <= MAX_PAYLOAD:
                self._pos = head
                self.synced = True
                return True
            start = head + 1
