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

    @property
    def wire_type(self) -> int:
        return _WIRE_TYPE[self.kind]

    @property
    def key(self) -> bytes:
        """The field's tag, encoded."""
        return _varint(self.number << 3 | self.wire_type)


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
    if isinstance(value, bool):  # protobuf warns that it will refuse one (7.34); refused here already
        raise TypeError("expected an integer, got bool")
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
#: The type a value of the kind already has when it needs no conversion or check.
_AS_IS: dict[str, type | None] = {
    BOOL: bool, UINT32: None, STRING: str, BYTES: bytes, REPEATED_STRING: None, MAP_STRING_BYTES: None,
}
_DEFAULT: dict[str, Callable[[], Any]] = {
    BOOL: bool, UINT32: int, STRING: str, BYTES: bytes, REPEATED_STRING: list, MAP_STRING_BYTES: dict,
}


# -- the wire format ------------------------------------------------------------------------

_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def _varint(number: int) -> bytes:
    if number < 0x80:
        return _ONE_BYTE[number]
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _length_delimited(key: bytes, data: bytes) -> bytes:
    return key + _varint(len(data)) + data


def _fail(what: str, problem: str) -> DecodeError:
    return DecodeError(f"malformed {what}: {problem}")


def _read_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """(the varint at *pos*, the position after it)."""
    end = len(data)
    if pos < end and data[pos] < 0x80:  # most are one byte
        return data[pos], pos + 1
    result = shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos  # bits past 64 are dropped
        shift += 7
        if shift == 70:
            raise _fail(what, "varint longer than 10 bytes")
    raise _fail(what, "truncated varint")


def _read_tag(data: bytes, pos: int, what: str) -> tuple[int, int, int]:
    """(field number, wire type, the position after the tag)."""
    key, pos = _read_varint(data, pos, what)
    number, wire_type = key >> 3, key & 7
    if number == 0 or key > _MASK32:
        raise _fail(what, f"invalid field number {number}")
    if wire_type > _FIXED32:
        raise _fail(what, f"invalid wire type {wire_type}")
    return number, wire_type, pos


def _read_chunk(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """(the length-delimited bytes at *pos*, the position after them)."""
    size, pos = _read_varint(data, pos, what)
    end = pos + size
    if end > len(data):
        raise _fail(what, "truncated field")
    return data[pos:end], end


def _skip(data: bytes, pos: int, number: int, wire_type: int, what: str) -> int:
    """The position after a field the message does not declare (or declares with another wire type)."""
    if wire_type == _VARINT:
        return _read_varint(data, pos, what)[1]
    if wire_type == _LEN:
        return _read_chunk(data, pos, what)[1]
    if wire_type in (_FIXED64, _FIXED32):
        pos += 8 if wire_type == _FIXED64 else 4
        if pos > len(data):
            raise _fail(what, "truncated field")
        return pos
    if wire_type == _END_GROUP:
        raise _fail(what, f"end of group {number} outside a group")
    while True:  # _START_GROUP: fields up to the group's end
        if pos >= len(data):
            raise _fail(what, f"group {number} not ended")
        inner, inner_type, pos = _read_tag(data, pos, what)
        if inner_type == _END_GROUP:
            if inner != number:
                raise _fail(what, f"group {number} ended as {inner}")
            return pos
        pos = _skip(data, pos, inner, inner_type, what)


def _text_of(chunk: bytes, what: str) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(what, "string field is not UTF-8") from None


def _map_entry(entry: bytes, what: str) -> tuple[str, bytes] | None:
    """A map entry's (key, value); None for an entry carrying any other field, which the
    protobuf runtime (upb) leaves out of the map."""
    what += " map entry"
    key, value, whole, pos = "", b"", True, 0
    while pos < len(entry):
        number, wire_type, pos = _read_tag(entry, pos, what)
        if number in (1, 2) and wire_type == _LEN:
            chunk, pos = _read_chunk(entry, pos, what)
            if number == 1:
                key = _text_of(chunk, what)
            else:
                value = chunk
        else:
            pos = _skip(entry, pos, number, wire_type, what)
            whole = False
    return (key, value) if whole else None


_UNDECLARED = ("", "", -1)


# -- messages -------------------------------------------------------------------------------


class Message:
    """A message of the protocol: construct with field values, ``encode()``, ``decode(data)``."""

    __slots__ = ()
    #: The message's full name in the .proto files.
    NAME: ClassVar[str]
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    #: (field, its tag encoded, the kind's default factory, the type taken as is) for each field
    _PLAN: ClassVar[tuple[tuple[Field, bytes, Callable[[], Any], type | None], ...]] = ()
    #: field number -> (name, kind, wire type)
    _BY_NUMBER: ClassVar[dict[int, tuple[str, str, int]]] = {}

    def __init__(self, **values: Any) -> None:
        for field, _key, default, as_is in self._PLAN:
            value = values.pop(field.name, None)
            if value is None:
                value = default()
            elif type(value) is not as_is:
                try:
                    value = _ACCEPT[field.kind](value)
                except TypeError as exc:
                    raise TypeError(f"{self.NAME}.{field.name}: {exc}") from None
                except ValueError as exc:  # out of range, or bytes for a string that are not UTF-8
                    raise ValueError(f"{self.NAME}.{field.name}: {exc}") from None
            setattr(self, field.name, value)
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
        parts = []
        for field, key, _default, _as_is in self._PLAN:
            value = getattr(self, field.name)
            if not value:
                continue
            kind = field.kind
            if kind == BYTES:
                parts.append(_length_delimited(key, value))
            elif kind == STRING:
                parts.append(_length_delimited(key, value.encode()))
            elif kind == REPEATED_STRING:
                parts.extend(_length_delimited(key, item.encode()) for item in value)
            elif kind == MAP_STRING_BYTES:
                parts.extend(_length_delimited(key, _length_delimited(b"\n", k.encode()) + _length_delimited(b"\x12", v))
                             for k, v in sorted(value.items()))
            else:  # BOOL, UINT32
                parts.append(key + _varint(int(value)))
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Any:
        """The message *data* encodes; DecodeError if it is malformed."""
        message = cls.__new__(cls)
        for field, _key, default, _as_is in cls._PLAN:
            setattr(message, field.name, default())
        what, by_number, pos = cls.NAME, cls._BY_NUMBER, 0
        while pos < len(data):
            number, wire_type, pos = _read_tag(data, pos, what)
            name, kind, expected = by_number.get(number, _UNDECLARED)
            if wire_type != expected:
                pos = _skip(data, pos, number, wire_type, what)
                continue
            if wire_type == _VARINT:
                value, pos = _read_varint(data, pos, what)
                setattr(message, name, value != 0 if kind == BOOL else value & _MASK32)
                continue
            chunk, pos = _read_chunk(data, pos, what)
            if kind == BYTES:
                setattr(message, name, chunk)
            elif kind == STRING:
                setattr(message, name, _text_of(chunk, what))
            elif kind == REPEATED_STRING:
                getattr(message, name).append(_text_of(chunk, what))
            else:  # MAP_STRING_BYTES
                entry = _map_entry(chunk, what)
                if entry is not None:
                    getattr(message, name)[entry[0]] = entry[1]
        return message


def _message(name: str, *fields: tuple[int, str, str]) -> type[Message]:
    declared = tuple(Field(*f) for f in fields)
    namespace = {"__slots__": tuple(f.name for f in declared), "NAME": name, "FIELDS": declared,
                 "_PLAN": tuple((f, f.key, _DEFAULT[f.kind], _AS_IS[f.kind]) for f in declared),
                 "_BY_NUMBER": {f.number: (f.name, f.kind, f.wire_type) for f in declared}, "__module__": __name__}
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

