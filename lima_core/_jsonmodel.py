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
    """Make *cls*, a :class:`JSONModel` subclass, a keyword-only dataclass.

    ``dataclasses`` would compile ``__init__``, ``__repr__`` and ``__eq__``
    for every class with ``exec`` when the module is imported, and an external
    driver process pays for that at every start (importing ``limatype`` after
    grpc took 25 ms, 8 without; benchmark B3). Here ``__repr__`` and
    ``__eq__`` come from :class:`JSONModel`, driven by the field table, and
    ``__init__`` is compiled the first time the class is instantiated, so
    only the classes a process uses pay for it, and construction stays as
    fast as a dataclass's. ``dataclasses.fields`` and ``dataclasses.replace``
    work as on any dataclass.
    """
    cls = dataclasses.dataclass(cls, kw_only=True, init=False, repr=False, eq=False, match_args=False)
    fields = dataclasses.fields(cls)
    cls.__init__ = _first_init  # type: ignore[misc]
    cls._repr_fields = tuple(f.name for f in fields if f.repr)
    cls._eq_fields = tuple(f.name for f in fields if f.compare)
    return cls


def _first_init(self: Any, **kwargs: Any) -> None:
    """Every model's ``__init__`` until its first instance: compile the real one, then call it."""
    cls = type(self)
    cls.__init__ = _compile_init(cls)
    cls.__init__(self, **kwargs)


_USE_FACTORY = object()


def _compile_init(cls: type) -> Callable[..., None]:
    """A keyword-only ``__init__`` assigning each field (what ``dataclasses`` generates)."""
    env: dict[str, Any] = {"_USE_FACTORY": _USE_FACTORY}
    params, body = [], []
    for f in dataclasses.fields(cls):
        if f.default_factory is not _MISSING:
            env[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_USE_FACTORY")
            body.append(f"    self.{f.name} = _factory_{f.name}() if {f.name} is _USE_FACTORY else {f.name}")
        elif f.default is not _MISSING:
            env[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
            body.append(f"    self.{f.name} = {f.name}")
        else:
            params.append(f.name)
            body.append(f"    self.{f.name} = {f.name}")
    exec(f"def __init__(self, *, {', '.join(params)}):\n" + "\n".join(body) + "\n", env)
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


@model
class JSONModel:
    """Base class of the models; subclasses are decorated with :func:`model`."""

    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=True)
    _repr_fields: typing.ClassVar[tuple[str, ...]]
    _eq_fields: typing.ClassVar[tuple[str, ...]]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._repr_fields)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = self._eq_fields
        return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)

    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as a dataclass with eq=True

    @classmethod
    def from_json(cls: type[M], data: Any, path: str = "") -> M:
        """Build from a decoded JSON/YAML mapping; ConfigError on a wrong type."""
        try:
            return _decode_plain(cls, data)
        except _NotPlain:
            return _decode_checked(cls, data, path)

    def to_json(self) -> dict[str, Any]:
        """The mapping to serialise, with Lima's keys; unknown keys included."""
        out: dict[str, Any] = {}
        for attr, json_key, omitempty in _encoding(self.__class__):
            value = getattr(self, attr)
            if value is None or (omitempty and _is_empty(value)):
                continue
            out[json_key] = value if value.__class__ in _SCALARS else _encode(value)
        if self.extra:
            for k, v in self.extra.items():
                out.setdefault(k, v)
        return out

    def to_json_bytes(self) -> bytes:
        """Compact JSON (no spaces, as Go's ``json.Marshal`` writes it): what crosses the wire."""
        return _COMPACT.encode(self.to_json()).encode()

    @classmethod
    def from_json_bytes(cls: type[M], data: bytes) -> M:
        """Decode JSON bytes, empty meaning ``{}``; ValueError for bad JSON, ConfigError for a wrong shape."""
        return cls.from_json(_parse(data) if data else {})

    def replace_with(self: M, other: M) -> None:
        """Make this object equal to *other*, in place (for callers holding a reference)."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(other, f.name))

    def copy(self: M) -> M:
        """A deep copy (via the JSON form)."""
        return type(self).from_json(self.to_json())


Decoder = Callable[[Any, str], Any]
_SCALARS = frozenset({str, int, float, bool})

_COMPACT = json.JSONEncoder(separators=(",", ":"))
_JSON = json.JSONDecoder()


def _parse(data: bytes) -> Any:
    """``json.loads(data)``, minus its encoding sniffing and whitespace scans for UTF-8 JSON that
    starts and ends with its value (what a driver sends); anything else goes to ``json.loads``."""
    try:
        text = data.decode()
        value, end = _JSON.raw_decode(text)
        if end == len(text):
            return value
    except ValueError:
        pass
    return json.loads(data)


def _decode_checked(cls: type[M], data: Any, path: str) -> M:
    """Decode *data*, converting what Go would (``1.0`` to an int, a number to a string) and naming the
    path of a value of the wrong type."""
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


# -- the plain-shape decoder ----------------------------------------------------------------
#
# Documents that cross the wire between lima-core and a driver (``info``, ``configure``; B2)
# almost always hold exactly the declared types. ``_decode_plain`` takes only that shape: a
# dict, values of exactly the field's type (or null), string keys. It checks each value with
# one class comparison instead of a chain of decoder calls, and builds no paths, and raises
# ``_NotPlain`` at anything else; ``from_json`` then decodes the document with
# ``_decode_checked``, which converts what it may and names what is wrong. The two give equal
# models for any document (tests/core/test_model.py fuzzes that).


class _NotPlain(Exception):
    """A document (or a value in it) that ``_decode_plain`` does not take as is."""


# How _decode_plain takes a field's value (the kind, with an argument).
_AS_IS, _EXACT, _MODEL, _LIST, _LIST_EXACT, _LIST_MODEL, _DICT, _DICT_EXACT, _NEVER = range(9)
_PLAIN_TYPES = (str, int, bool)


@functools.cache
def _plan(cls: type) -> tuple[tuple[tuple[str, str | None, Any, bool, int, Any], ...], frozenset[str]]:
    """Per field of *cls*: (attribute, JSON key or None, default, default is a factory, kind, argument);
    and the JSON keys."""
    hints = _hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        factory = f.default_factory is not _MISSING
        default = f.default_factory if factory else f.default
        kind, arg = _kind(hints[f.name]) if "key" in f.metadata else (_NEVER, None)
        if not factory and default is _MISSING:  # a field a document may not leave out: the checked decoder says so
            kind = _NEVER
        plan.append((f.name, f.metadata.get("key"), default, factory, kind, arg))
    return tuple(plan), _keys(cls)


def _kind(hint: Any) -> tuple[int, Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = _non_null(hint)
    origin = typing.get_origin(hint)
    if hint is Any or hint is bytes:
        return _AS_IS, None
    if hint in _PLAIN_TYPES:
        return _EXACT, hint
    if isinstance(hint, type) and issubclass(hint, JSONModel):
        return _MODEL, hint
    if origin in (list, dict):
        item = typing.get_args(hint)[-1]  # an optional item type is left to the checked decoder
        if item is Any:
            return (_LIST if origin is list else _DICT), None
        if item in _PLAIN_TYPES:
            return (_LIST_EXACT if origin is list else _DICT_EXACT), item
        if origin is list and isinstance(item, type) and issubclass(item, JSONModel):
            return _LIST_MODEL, item
    return _NEVER, None


def _decode_plain(cls: type[M], data: Any) -> M:
    if data.__class__ is not dict:
        raise _NotPlain
    plan, known = _plan(cls)
    obj = object.__new__(cls)
    attrs = obj.__dict__
    found = 0
    for attr, json_key, default, factory, kind, arg in plan:
        value = data.get(json_key, _MISSING) if json_key is not None else _MISSING
        if value is _MISSING:
            if not factory and default is _MISSING:
                raise _NotPlain
            attrs[attr] = default() if factory else default
            continue
        found += 1
        if value is None or kind == _AS_IS:
            attrs[attr] = value
        elif kind == _EXACT:
            if value.__class__ is not arg:
                raise _NotPlain
            attrs[attr] = value
        elif kind == _MODEL:
            attrs[attr] = _decode_plain(arg, value)
        elif kind <= _LIST_MODEL:
            if value.__class__ is not list:
                raise _NotPlain
            if kind == _LIST_MODEL:
                attrs[attr] = [_decode_plain(arg, {} if v is None else v) for v in value]
                continue
            if kind == _LIST_EXACT:
                for v in value:
                    if v.__class__ is not arg and v is not None:
                        raise _NotPlain
            attrs[attr] = value[:]
        elif kind <= _DICT_EXACT:
            if value.__class__ is not dict:
                raise _NotPlain
            for k, v in value.items():
                if k.__class__ is not str or (kind == _DICT_EXACT and v.__class__ is not arg and v is not None):
                    raise _NotPlain
            attrs[attr] = dict(value)
        else:
            raise _NotPlain
    attrs["extra"] = {} if found == len(data) else {k: v for k, v in data.items() if k not in known}
    return obj


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
    if value.__class__ in _SCALARS:
        return value
    if isinstance(value, JSONModel):
        return value.to_json()
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _is_empty(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str, list, dict)) and not value
