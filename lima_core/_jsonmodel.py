"""Dataclasses that read and write Lima's JSON/YAML with its exact keys.

A model is a keyword-only dataclass, made with :func:`model`, whose fields
declare their JSON key with :func:`key`. Decoding checks types and names the
offending path (``images[0].kernel.location: expected a string, got 3``);
keys a model does not know are kept in ``extra`` and written back, so a
document from a newer Lima, or a driver's own fields, survive a round trip
through lima-core.

Go's ``omitempty`` is modelled per field: ``None`` is never written, and with
``omitempty=True`` neither are ``0``, ``False``, ``""``, ``[]`` or ``{}``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import ConfigError

M = TypeVar("M", bound="JSONModel")
_MISSING = dataclasses.MISSING


def key(name: str, default: Any = None, *, omitempty: bool = False, factory: Any = _MISSING) -> Any:
    """Declare a model field stored under JSON key *name*."""
    meta = {"key": name, "omitempty": omitempty}
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def model(cls: type[M]) -> type[M]:
    """Make *cls*, a :class:`JSONModel` subclass, a keyword-only dataclass."""
    return dataclasses.dataclass(cls, kw_only=True)


@dataclasses.dataclass(kw_only=True)
class JSONModel:
    """Base class of the models; subclasses are decorated with :func:`model`."""

    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls: type[M], data: Any, path: str = "") -> M:
        """Build from a decoded JSON/YAML mapping, converting what Go would (``1.0`` to an int, a number
        to a string); ConfigError naming the path of a value of the wrong type."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path or cls.__name__}: expected a mapping, got {_describe(data)}")
        kwargs: dict[str, Any] = {}
        for attr, json_key, _omit, decode in _fields(cls):
            if json_key in data:
                kwargs[attr] = decode(data[json_key], f"{path}.{json_key}" if path else json_key)
        known = _keys(cls)
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        """The mapping to serialise, with Lima's keys; unknown keys included."""
        out: dict[str, Any] = {}
        for attr, json_key, omitempty in _encoding(self.__class__):
            value = getattr(self, attr)
            if value is None or (omitempty and _is_empty(value)):
                continue
            out[json_key] = _encode(value)
        if self.extra:
            for k, v in self.extra.items():
                out.setdefault(k, v)
        return out

    def to_json_bytes(self) -> bytes:
        """Compact JSON (no spaces, as Go's ``json.Marshal`` writes it): what crosses the wire."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json_bytes(cls: type[M], data: bytes) -> M:
        """Decode JSON bytes, empty meaning ``{}``; ValueError for bad JSON, ConfigError for a wrong shape."""
        return cls.from_json(json.loads(data) if data else {})

    def replace_with(self: M, other: M) -> None:
        """Make this object equal to *other*, in place (for callers holding a reference)."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(other, f.name))

    def copy(self: M) -> M:
        """A deep copy (via the JSON form)."""
        return type(self).from_json(self.to_json())


Decoder = Callable[[Any, str], Any]


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, bool, Decoder], ...]:
    """(attribute, JSON key, omitempty, decoder) of each keyed field of model *cls*."""
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "key" in f.metadata:
            out.append((f.name, f.metadata["key"], f.metadata["omitempty"], _decoder(hints[f.name])))
    return tuple(out)


@functools.cache
def _encoding(cls: type) -> tuple[tuple[str, str, bool], ...]:
    """(attribute, JSON key, omitempty) of each keyed field of model *cls*, in order."""
    return tuple((f.name, f.metadata["key"], f.metadata["omitempty"]) for f in dataclasses.fields(cls)
                 if "key" in f.metadata)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The field types of model *cls* (its annotations are strings, evaluated once)."""
    return typing.get_type_hints(cls)


@functools.cache
def _keys(cls: type) -> frozenset[str]:
    return frozenset(json_key for _attr, json_key, _omit in _encoding(cls))


def _join(path: str, part: str) -> str:
    if not part.isprintable():  # a key holding a newline or a control character: keep messages on one line
        part = repr(part)
    return f"{path}.{part}" if path else part


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _non_null(union: Any) -> Any:
    """The type an optional (``X | None``) holds; the first non-null member of a union."""
    return next(a for a in typing.get_args(union) if a is not type(None))


@functools.cache
def _decoder(hint: Any) -> Decoder:
    """A function ``(value, path) -> value`` checking and converting a JSON value for *hint*.

    Built once per type hint, so decoding a document does no type introspection.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = _decoder(_non_null(hint))
        return lambda value, path: None if value is None else inner(value, path)
    if hint is Any:
        return lambda value, path: value
    decode = _value_decoder(hint, origin)
    return lambda value, path: None if value is None else decode(value, path)


def _value_decoder(hint: Any, origin: Any) -> Decoder:
    if isinstance(hint, type) and issubclass(hint, JSONModel):
        return hint.from_json
    if origin is list:
        (item,) = typing.get_args(hint)
        decode_item = _decoder(item)
        # A null entry of a list of models is an empty model, as Go decodes it; validation names what is missing.
        empty = isinstance(item, type) and issubclass(item, JSONModel)

        def decode_list(value: Any, path: str) -> list[Any]:
            if not isinstance(value, list):
                raise ConfigError(f"{path}: expected a list, got {_describe(value)}")
            return [decode_item({} if v is None and empty else v, f"{path}[{i}]") for i, v in enumerate(value)]
        return decode_list
    if origin is dict:
        _k, item = typing.get_args(hint)
        decode_value = _decoder(item)

        def decode_dict(value: Any, path: str) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected a mapping, got {_describe(value)}")
            return {str(k): decode_value(v, _join(path, str(k))) for k, v in value.items()}
        return decode_dict
    scalar = _SCALAR_DECODERS.get(hint)
    if scalar is not None:
        return scalar

    def unsupported(value: Any, path: str) -> Any:
        raise TypeError(f"unsupported model field type {hint!r} at {path}")
    return unsupported


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true or false, got {_describe(value)}")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}: expected an integer, got {_describe(value)}")
    return value


def _str(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{path}: expected a string, got {_describe(value)}")
    return value if isinstance(value, str) else str(value)


_SCALAR_DECODERS: dict[Any, Decoder] = {bool: _bool, int: _int, str: _str, bytes: lambda value, path: value}


def _encode(value: Any) -> Any:
    if isinstance(value, JSONModel):
        return value.to_json()
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _is_empty(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str, list, dict)) and not value
