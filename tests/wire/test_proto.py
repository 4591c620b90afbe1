"""lima_core.protocol.proto against protoc and the protobuf runtime: the same messages and services
as protoc reads from proto/*.proto, and the same bytes in both directions."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lima_core.protocol import proto


@pytest.fixture(scope="module")
def pool(proto_modules: Path) -> Any:
    """protobuf's default descriptor pool, holding the files protoc generated just now."""
    from google.protobuf import descriptor_pool, empty_pb2  # noqa: F401 (registers empty.proto)

    sys.path.insert(0, str(proto_modules))
    try:
        import driver_pb2  # noqa: F401
        import lima_core_ext_pb2  # noqa: F401
    finally:
        sys.path.remove(str(proto_modules))
    return descriptor_pool.Default()


def _pb_class(pool: Any, message: type[proto.Message]) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(pool.FindMessageTypeByName(message.NAME))


_TYPE_NAMES = {8: "bool", 13: "uint32", 9: "string", 12: "bytes"}  # FieldDescriptor.TYPE_*


def _kind(field: Any) -> str:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        return f"map<{_TYPE_NAMES[key.type]}, {_TYPE_NAMES[value.type]}>"
    name = _TYPE_NAMES[field.type]
    return f"repeated {name}" if field.is_repeated else name


def test_messages_are_declared_as_the_proto_files_declare_them(pool: Any) -> None:
    in_files = {d.full_name for name in ("driver.proto", "lima_core_ext.proto")
                for d in pool.FindFileByName(name).message_types_by_name.values()}
    assert in_files | {"google.protobuf.Empty"} == {m.NAME for m in proto.MESSAGES}
    for message in proto.MESSAGES:
        descriptor = pool.FindMessageTypeByName(message.NAME)
        declared = {(f.number, f.name, f.kind) for f in message.FIELDS}
        assert declared == {(f.number, f.name, _kind(f)) for f in descriptor.fields}, message.NAME


def test_services_are_declared_as_the_proto_files_declare_them(pool: Any) -> None:
    files = [pool.FindFileByName(name) for name in ("driver.proto", "lima_core_ext.proto")]
    assert {s.full_name for f in files for s in f.services_by_name.values()} == {s.name for s in proto.SERVICES}
    for service in proto.SERVICES:
        descriptor = pool.FindServiceByName(service.name)
        ours = {(r.name, r.request.NAME, r.response.NAME, r.streaming) for r in service.rpcs}
        theirs = {(m.name, m.input_type.full_name, m.output_type.full_name, m.server_streaming)
                  for m in descriptor.methods}
        assert ours == theirs, service.name
        assert not any(m.client_streaming for m in descriptor.methods)


_VALUES = {
    proto.BOOL: st.booleans(),
    proto.UINT32: st.integers(0, 2**32 - 1),
    proto.STRING: st.text(max_size=20),
    proto.BYTES: st.binary(max_size=20),
    proto.REPEATED_STRING: st.lists(st.text(max_size=5), max_size=4),
    proto.MAP_STRING_BYTES: st.dictionaries(st.text(max_size=5), st.binary(max_size=5), max_size=4),
}


@st.composite
def _messages(draw: st.DrawFn) -> tuple[type[proto.Message], dict[str, Any]]:
    message = draw(st.sampled_from(proto.MESSAGES))
    return message, draw(st.fixed_dictionaries({f.name: _VALUES[f.kind] for f in message.FIELDS}))


def _fields(message: Any, fields: tuple[proto.Field, ...]) -> dict[str, Any]:
    """Field values of either side's message, as plain Python values."""
    out = {}
    for f in fields:
        value = getattr(message, f.name)
        out[f.name] = dict(value) if f.kind == proto.MAP_STRING_BYTES else (
            list(value) if f.kind == proto.REPEATED_STRING else value)
    return out


@settings(max_examples=400, deadline=None)
@given(case=_messages())
def test_encoding_is_the_protobuf_runtimes(pool: Any, case: tuple[type[proto.Message], dict[str, Any]]) -> None:
    message, values = case
    pb_class = _pb_class(pool, message)
    ours, theirs = message(**values), pb_class(**values)
    data = theirs.SerializeToString(deterministic=True)
    assert pb_class.FromString(ours.encode()) == theirs
    if all(f.kind != proto.MAP_STRING_BYTES for f in message.FIELDS):  # map order is the writer's choice
        assert ours.encode() == data
    assert message.decode(data) == ours
    assert _fields(ours, message.FIELDS) == values


# Builds the inputs only: what they decode to is judged by the protobuf runtime.
_varint = proto._varint

_RAW_VARINTS = st.one_of(
    st.integers(0, 2**64 - 1).map(_varint),
    st.sampled_from((2**32 - 1, 2**32, 2**32 + 1, 2**63, 2**64 - 1)).map(_varint),
    # ten bytes, the last one anything: bits past 64 are dropped, an eleventh byte is an error
    st.tuples(st.binary(min_size=9, max_size=10), st.integers(0, 0x7F)).map(
        lambda t: bytes(b | 0x80 for b in t[0]) + bytes((t[1],))),
)


@st.composite
def _field_soup(draw: st.DrawFn, numbers: tuple[int, ...], depth: int = 0) -> bytes:
    """Fields of any number and wire type, repeated and out of order: what another runtime, or a
    damaged stream, may send."""
    out = b""
    for _ in range(draw(st.integers(0, 5))):
        number = draw(st.sampled_from(numbers))
        wire_type = draw(st.sampled_from((0, 0, 1, 2, 2, 2, 3, 5)))
        if wire_type == 0:
            out += _varint(number << 3) + draw(_RAW_VARINTS)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            out += _varint(number << 3 | wire_type) + draw(st.binary(min_size=size, max_size=size))
        elif wire_type == 2:
            choices = [st.binary(max_size=6), st.text(max_size=4).map(str.encode)]
            if depth == 0:
                choices.append(_field_soup((1, 2, 3), depth=1))  # a map entry, well formed or not
            payload = draw(st.one_of(choices))
            out += _varint(number << 3 | 2) + _varint(len(payload)) + payload
        else:
            inner = draw(_field_soup((1, 2), depth=1)) if depth == 0 else b""
            end = draw(st.sampled_from((number, number, number + 1)))  # now and then a mismatched end
            out += _varint(number << 3 | 3) + inner + _varint(end << 3 | 4)
    if draw(st.integers(0, 9)) == 0:
        out += draw(st.binary(min_size=1, max_size=3))  # trailing damage
    return out


def _parse(parse: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse(data)
    except Exception as exc:  # noqa: BLE001 (either side's error class)
        return "error", type(exc).__name__


@settings(max_examples=1500, deadline=None)
@given(message=st.sampled_from(proto.MESSAGES), data=st.data())
def test_decoding_is_the_protobuf_runtimes(pool: Any, message: type[proto.Message], data: st.DataObject) -> None:
    numbers = tuple(f.number for f in message.FIELDS) + (7, 99)
    encoded = data.draw(st.one_of(_field_soup(numbers), st.binary(max_size=24)))
    ours = _parse(message.decode, encoded)
    theirs = _parse(_pb_class(pool, message).FromString, encoded)
    assert ours[0] == theirs[0], (encoded, ours, theirs)
    if ours[0] == "ok":
        assert _fields(ours[1], message.FIELDS) == _fields(theirs[1], message.FIELDS), encoded
    else:
        assert ours[1] == "DecodeError"


@pytest.mark.parametrize("encoded", [
    b"\x08" + b"\x80" * 9 + b"\x02",  # a varint whose only set bit is past 64: zero, so false
    b"\x08" + b"\xff" * 9 + b"\x01",
    _varint((2**29 - 1) << 3) + b"\x01",  # the largest field number
    _varint(2**29 << 3) + b"\x01",  # one past it
    _varint(2**32) + b"\x01",  # a tag past 32 bits
    _varint(1 << 3 | 6), _varint(1 << 3 | 7),  # wire types that do not exist
    _varint(1 << 3 | 4),  # the end of a group that never started
    _varint(1 << 3 | 3) + _varint(2 << 3 | 3) + _varint(2 << 3 | 4) + _varint(1 << 3 | 4),  # nested groups
    b"\n\x06\n\x01a\x12\x01x",  # a map entry
    b"\n\x08\n\x01a\x12\x01x\x18\x01",  # a map entry with a field besides key and value: left out
    b"\n\x00",  # a map entry with neither: the empty key
])
@pytest.mark.parametrize("message", [proto.ForwardGuestAgentResponse, proto.ProtocolInfo, proto.SSHAddressResponse,
                                     proto.BootScriptsResponse])
def test_edges_decode_as_the_protobuf_runtime_decodes_them(pool: Any, message: type[proto.Message],
                                                          encoded: bytes) -> None:
    ours = _parse(message.decode, encoded)
    theirs = _parse(_pb_class(pool, message).FromString, encoded)
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "ok":
        assert _fields(ours[1], message.FIELDS) == _fields(theirs[1], message.FIELDS)


@pytest.mark.parametrize(("message", "field", "value"), [
    (proto.ForwardGuestAgentResponse, "should_forward", v) for v in (True, 1, 0, 2, "x", None, 1.0)
] + [
    (proto.SSHAddressResponse, "address", v) for v in ("a", b"a", b"\xff", 1, None)
] + [
    (proto.InfoResponse, "info_json", v) for v in (b"a", "a", bytearray(b"a"), 1, None)
] + [
    (proto.ProtocolInfo, "version", v) for v in (1, True, -1, 2**32, 1.0, "1", None)
] + [
    (proto.ProtocolInfo, "hooks", v) for v in (["a"], ("a",), [b"a"], [1], None, ["a", None])
] + [
    (proto.BootScriptsResponse, "scripts", v) for v in ({"a": b"x"}, {"a": "x"}, {1: b"x"}, {"a": None},
                                                        [("a", b"x")], None)
])
def test_a_field_takes_what_the_protobuf_runtime_takes(pool: Any, message: type[proto.Message], field: str,
                                                       value: Any) -> None:
    def outcome(make: Any) -> Any:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                made = make(**{field: value})
        except (TypeError, ValueError) as exc:
            return TypeError if isinstance(exc, TypeError) else ValueError
        if any(issubclass(w.category, DeprecationWarning) for w in caught):
            return TypeError  # the runtime's notice that it will refuse this (a bool for a uint32)
        return _fields(made, message.FIELDS)

    ours = outcome(message)
    assert ours == outcome(_pb_class(pool, message))
    if ours in (TypeError, ValueError):
        with pytest.raises(ours, match=f"^{message.NAME}.{field}: "):
            message(**{field: value})


def test_an_unknown_field_name_is_refused() -> None:
    with pytest.raises(TypeError, match="InfoResponse has no field 'info'"):
        proto.InfoResponse(info=b"x")
