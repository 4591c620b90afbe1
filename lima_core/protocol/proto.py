"""The messages and services of ``proto/*.proto``, in protobuf's wire format.

Every message of Lima's driver protocol (and of lima-core's extensions) is
flat: its fields are bool, uint32, string, bytes, repeated string or
``map<string, bytes>``. This module declares each one with its field numbers
and encodes and decodes them as the protobuf runtime does for proto3: a field
holding its default is not sent, map entries go in key order, unknown fields
and fields of an unexpected wire type are skipped, the last value of a scalar
wins, strings must be UTF-8. The tests check the declarations against protoc's
reading of the ``.proto`` files, and the bytes against the protobuf runtime's
in both directions.

Why not the protobuf runtime: importing it costs a driver process about 30 ms
before it can answer (its descriptor pool imports the pure-Python message
implementation and ``text_format`` even when the upb backend does the work),
half of what a driver may spend over ``import grpc`` (B3 in
``docs/benchmarks.md``), for messages of one or two fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

# Field kinds, named as in a .proto file.
BOOL = "bool"
UINT32 = "uint32"
STRING = "string"
BYTES = "bytes"
REPEATED_STRING = "repeated string"
MAP_STRING_BYTES = "map<string, bytes>"

_VARINT, _FIXED64, _LEN, _START_GROUP, _END_GROUP, _FIXED32 = range(6)
_WIRE_TYPE = {BOOL: _VARINT, UINT32: _VARINT, STRING: _LEN, BYTES: _LEN, REPEATED_STRING: _LEN,
              MAP_STRING_BYTES: _LEN}
_MASK32 = (1 << 32) - 1


class DecodeError(ValueError):
    """Bytes that are not a valid encoding of the message."""


class Field(NamedTuple):
    number: int
    name: str
    kind: str


# -- values: what a field accepts (as the protobuf runtime does) -------------------------


def _index(value: Any) -> int:
    if isinstance(value, (str, bytes, float)):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value.__index__()  # ints and bools; anything else raises TypeError


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")  # as protobuf: bytes that are UTF-8 stand for their text
    raise TypeError(f"expected str, got {type(value).__name__}")


def _bytes(value: Any) -> bytes:
    if type(value) is bytes:
        return value
    raise TypeError(f"expected bytes, got {type(value).__name__}")


def _uint32(value: Any) -> int:
    number = _index(value)
    if not 0 <= number <= _MASK32:
        raise ValueError(f"value out of range for uint32: {number}")
    return number


def _strings(value: Any) -> list[str]:
    return [_text(item) for item in value]


def _map(value: Any) -> dict[str, bytes]:
    pairs = value.items() if isinstance(value, Mapping) else value
    return {_text(key): _bytes(item) for key, item in pairs}


_ACCEPT: dict[str, Callable[[Any], Any]] = {
    BOOL: lambda v: bool(_index(v)), UINT32: _uint32, STRING: _text, BYTES: _bytes,
    REPEATED_STRING: _strings, MAP_STRING_BYTES: _map,
}
_DEFAULT: dict[str, Callable[[], Any]] = {
    BOOL: bool, UINT32: int, STRING: str, BYTES: bytes, REPEATED_STRING: list, MAP_STRING_BYTES: dict,
}


# -- the wire format ------------------------------------------------------------------------


def _varint(number: int) -> bytes:
    if number < 0x80:
        return bytes((number,))
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _tagged(number: int, data: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | _LEN) + _varint(len(data)) + data


class _Reader:
    """Reads one message's fields; every malformation raises DecodeError naming the message."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def fail(self, problem: str) -> DecodeError:
        return DecodeError(f"malformed {self.what}: {problem}")

    def varint(self) -> int:
        data, pos, result = self.data, self.pos, 0
        for shift in range(0, 70, 7):  # at most 10 bytes
            if pos >= len(data):
                raise self.fail("truncated varint")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return result & (1 << 64) - 1
        raise self.fail("varint longer than 10 bytes")

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise self.fail("truncated field")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def tag(self) -> tuple[int, int]:
        """(field number, wire type) of the next field."""
        key = self.varint()
        number, wire_type = key >> 3, key & 7
        if number == 0 or key > _MASK32:
            raise self.fail(f"invalid field number {number}")
        if wire_type > _FIXED32:
            raise self.fail(f"invalid wire type {wire_type}")
        return number, wire_type

    def skip(self, number: int, wire_type: int) -> None:
        """Pass over a field this message does not declare (or declares with another wire type)."""
        if wire_type == _VARINT:
            self.varint()
        elif wire_type == _FIXED64:
            self.take(8)
        elif wire_type == _LEN:
            self.take(self.varint())
        elif wire_type == _FIXED32:
            self.take(4)
        elif wire_type == _START_GROUP:
            while True:
                if self.pos >= len(self.data):
                    raise self.fail(f"group {number} not ended")
                inner, inner_type = self.tag()
                if inner_type == _END_GROUP:
                    if inner != number:
                        raise self.fail(f"group {number} ended as {inner}")
                    return
                self.skip(inner, inner_type)
        else:
            raise self.fail(f"end of group {number} outside a group")

    def text(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("string field is not UTF-8") from None


def _map_entry(reader: _Reader) -> tuple[str, bytes] | None:
    """The next map entry's (key, value); None for an entry carrying any other field, which the
    protobuf runtime (upb) leaves out of the map."""
    entry = _Reader(reader.take(reader.varint()), reader.what + " map entry")
    key, value, whole = "", b"", True
    while entry.pos < len(entry.data):
        number, wire_type = entry.tag()
        if number == 1 and wire_type == _LEN:
            key = entry.text(entry.take(entry.varint()))
        elif number == 2 and wire_type == _LEN:
            value = entry.take(entry.varint())
        else:
            entry.skip(number, wire_type)
            whole = False
    return (key, value) if whole else None


# -- messages -------------------------------------------------------------------------------


class Message:
    """A message of the protocol: construct with field values, ``encode()``, ``decode(data)``."""

    __slots__ = ()
    #: The message's full name in the .proto files.
    NAME: ClassVar[str]
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    _BY_NUMBER: ClassVar[dict[int, Field]] = {}

    def __init__(self, **values: Any) -> None:
        for field in self.FIELDS:
            value = values.pop(field.name, None)
            try:
                setattr(self, field.name, _DEFAULT[field.kind]() if value is None else _ACCEPT[field.kind](value))
            except TypeError as exc:
                raise TypeError(f"{self.NAME}.{field.name}: {exc}") from None
            except ValueError as exc:  # out of range, or bytes for a string that are not UTF-8
                raise ValueError(f"{self.NAME}.{field.name}: {exc}") from None
        if values:
            raise TypeError(f"{self.NAME} has no field {', '.join(map(repr, values))}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        values = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.FIELDS)
        return f"{type(self).__name__}({values})"

    def encode(self) -> bytes:
        """The message in protobuf's wire format (map entries sorted by key: the same message, the same bytes)."""
        out = []
        for number, name, kind in self.FIELDS:
            value = getattr(self, name)
            if not value:
                continue
            if kind is BYTES:
                out.append(_tagged(number, value))
            elif kind is STRING:
                out.append(_tagged(number, value.encode()))
            elif kind is REPEATED_STRING:
                out.extend(_tagged(number, item.encode()) for item in value)
            elif kind is MAP_STRING_BYTES:
                out.extend(_tagged(number, _tagged(1, key.encode()) + _tagged(2, item))
                           for key, item in sorted(value.items()))
            else:  # BOOL, UINT32
                out.append(_varint(number << 3 | _VARINT) + _varint(int(value)))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> Any:
        """The message *data* encodes; DecodeError if it is malformed."""
        message = cls()
        if not data:
            return message
        reader = _Reader(data, cls.NAME)
        by_number = cls._BY_NUMBER
        while reader.pos < len(data):
            number, wire_type = reader.tag()
            field = by_number.get(number)
            if field is None or _WIRE_TYPE[field.kind] != wire_type:
                reader.skip(number, wire_type)
                continue
            kind = field.kind
            if kind is BYTES:
                setattr(message, field.name, reader.take(reader.varint()))
            elif kind is STRING:
                setattr(message, field.name, reader.text(reader.take(reader.varint())))
            elif kind is REPEATED_STRING:
                getattr(message, field.name).append(reader.text(reader.take(reader.varint())))
            elif kind is MAP_STRING_BYTES:
                entry = _map_entry(reader)
                if entry is not None:
                    getattr(message, field.name)[entry[0]] = entry[1]
            elif kind is BOOL:
                setattr(message, field.name, reader.varint() != 0)
            else:  # UINT32: protobuf keeps the low 32 bits
                setattr(message, field.name, reader.varint() & _MASK32)
        return message


def _message(name: str, *fields: tuple[int, str, str]) -> type[Message]:
    declared = tuple(Field(*f) for f in fields)
    namespace = {"__slots__": tuple(f.name for f in declared), "NAME": name, "FIELDS": declared,
                 "_BY_NUMBER": {f.number: f for f in declared}, "__module__": __name__}
    return type(name.rpartition(".")[2], (Message,), namespace)


# google/protobuf/empty.proto
Empty = _message("google.protobuf.Empty")

# proto/driver.proto (package-less, as Lima's)
StartResponse = _message("StartResponse", (1, "success", BOOL), (2, "error", STRING))
BootScriptsResponse = _message("BootScriptsResponse", (1, "scripts", MAP_STRING_BYTES))
SSHAddressResponse = _message("SSHAddressResponse", (1, "address", STRING))
InfoResponse = _message("InfoResponse", (1, "info_json", BYTES))
SetConfigRequest = _message("SetConfigRequest", (1, "instance_config_json", BYTES))
SetConfigResponse = _message("SetConfigResponse", (1, "instance_config_json", BYTES))
ChangeDisplayPasswordRequest = _message("ChangeDisplayPasswordRequest", (1, "password", STRING))
GetDisplayConnectionResponse = _message("GetDisplayConnectionResponse", (1, "connection", STRING))
CreateSnapshotRequest = _message("CreateSnapshotRequest", (1, "tag", STRING))
ApplySnapshotRequest = _message("ApplySnapshotRequest", (1, "tag", STRING))
DeleteSnapshotRequest = _message("DeleteSnapshotRequest", (1, "tag", STRING))
ListSnapshotsResponse = _message("ListSnapshotsResponse", (1, "snapshots", STRING))
ForwardGuestAgentResponse = _message("ForwardGuestAgentResponse", (1, "should_forward", BOOL))

# proto/lima_core_ext.proto
ProtocolInfo = _message("lima_core.v1.ProtocolInfo", (1, "version", UINT32), (2, "driver_name", STRING),
                        (3, "hooks", REPEATED_STRING), (4, "server", STRING))
CaptureScreenshotRequest = _message("lima_core.v1.CaptureScreenshotRequest", (1, "format", STRING))
CaptureScreenshotResponse = _message("lima_core.v1.CaptureScreenshotResponse", (1, "image", BYTES))


# -- services -------------------------------------------------------------------------------


class Rpc(NamedTuple):
    name: str
    request: type[Message]
    response: type[Message]
    #: a server stream of responses (Start)
    streaming: bool = False


class Service(NamedTuple):
    #: The full name, the first part of each method's path ``/<name>/<rpc>``.
    name: str
    rpcs: tuple[Rpc, ...]


def _rpcs(*rpcs: tuple[Any, ...]) -> tuple[Rpc, ...]:
    return tuple(Rpc(*r) for r in rpcs)


DRIVER = Service("Driver", _rpcs(
    ("Validate", Empty, Empty),
    ("Create", Empty, Empty),
    ("CreateDisk", Empty, Empty),
    ("Start", Empty, StartResponse, True),
    ("Stop", Empty, Empty),
    ("Delete", Empty, Empty),
    ("RunGUI", Empty, Empty),
    ("ChangeDisplayPassword", ChangeDisplayPasswordRequest, Empty),
    ("GetDisplayConnection", Empty, GetDisplayConnectionResponse),
    ("CreateSnapshot", CreateSnapshotRequest, Empty),
    ("ApplySnapshot", ApplySnapshotRequest, Empty),
    ("DeleteSnapshot", DeleteSnapshotRequest, Empty),
    ("ListSnapshots", Empty, ListSnapshotsResponse),
    ("ForwardGuestAgent", Empty, ForwardGuestAgentResponse),
    ("GuestAgentConn", Empty, Empty),
    ("Configure", SetConfigRequest, SetConfigResponse),
    ("Info", Empty, InfoResponse),
    ("SSHAddress", Empty, SSHAddressResponse),
    ("AdditionalSetupForSSH", Empty, Empty),
    ("BootScripts", Empty, BootScriptsResponse),
))

EXTENSIONS = Service("lima_core.v1.DriverExtensions", _rpcs(
    ("GetProtocolInfo", Empty, ProtocolInfo),
    ("CaptureScreenshot", CaptureScreenshotRequest, CaptureScreenshotResponse),
    ("CheckHost", Empty, Empty),
))

SERVICES = (DRIVER, EXTENSIONS)
MESSAGES: tuple[type[Message], ...] = tuple(
    {m.NAME: m for s in SERVICES for r in s.rpcs for m in (r.request, r.response)}.values())

