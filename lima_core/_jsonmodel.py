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
            return (_FAST_DECODERS.get(cls) or _fast_decoder(cls))(data)
        except _NotPlain:
            return _checked_from_json(cls, data, path)

    def to_json(self) -> dict[str, Any]:
        """The mapping to serialise, with Lima's keys; unknown keys included."""
        cls = self.__class__
        return (_ENCODERS.get(cls) or _encoder(cls))(self)

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


def _checked_from_json(cls: type[M], data: Any, path: str) -> M:
    """The decoder that checks every value and names the path of a wrong one."""
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


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, bool, Decoder], ...]:
    """(attribute, JSON key, omitempty, decoder) of each keyed field of model *cls*."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "key" in f.metadata:
            out.append((f.name, f.metadata["key"], f.metadata["omitempty"], _decoder(hints[f.name])))
    return tuple(out)


@functools.cache
def _keys(cls: type) -> frozenset[str]:
    return frozenset(json_key for _attr, json_key, _omit, _decode in _fields(cls))


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


@functools.cache
def _decoder(hint: Any) -> Decoder:
    """A function ``(value, path) -> value`` checking and converting a JSON value for *hint*.

    Built once per type hint, so decoding a document does no type introspection.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = _decoder(next(a for a in typing.get_args(hint) if a is not type(None)))
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


# -- compiled codecs ------------------------------------------------------------------------
#
# Decoding and encoding sit on every call to an external driver (``info`` and ``configure``
# carry JSON; benchmark B2), so each model gets a decoder and an encoder compiled for its
# fields the first time it is used, as its ``__init__`` is. The compiled decoder takes only
# the plain shape (a dict, values of exactly the declared types, string keys) and raises
# ``_NotPlain`` at anything else; ``from_json`` then decodes the whole document again with
# ``_checked_from_json``, which converts what it may (``1.0`` to an int, a number to a
# string) and names the path of what is wrong. Both give equal models for any document.


class _NotPlain(Exception):
    """A value the compiled decoder does not take as is."""


def _not_plain() -> Any:
    raise _NotPlain


_FAST_DECODERS: dict[type, Callable[[Any], Any]] = {}
_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {}
_EMPTYABLE = (bool, int, float, str, list, dict)


def _fast_decoder(cls: type) -> Callable[[Any], Any]:
    """Compile *cls*'s plain-shape decoder. A model that holds itself, directly or not, reaches the
    decoder being compiled through a trampoline."""
    _FAST_DECODERS[cls] = lambda data: _FAST_DECODERS[cls](data)
    try:
        decode = _compile_fast_decoder(cls)
    except BaseException:
        del _FAST_DECODERS[cls]
        raise
    _FAST_DECODERS[cls] = decode
    return decode


def _compile_fast_decoder(cls: type) -> Callable[[Any], Any]:
    env: dict[str, Any] = {"_cls": cls, "_new": object.__new__, "_MISSING": _MISSING, "_not_plain": _not_plain,
                           "_known": _keys(cls)}
    hints = typing.get_type_hints(cls)
    lines = ["def decode(data):", "    if data.__class__ is not dict:", "        _not_plain()",
             "    found = 0"]
    assign = []
    for i, f in enumerate(dataclasses.fields(cls)):
        local = f"f{i}"
        if f.default_factory is not _MISSING:
            env[f"_factory{i}"] = f.default_factory
            default = f"_factory{i}()"
        elif f.default is not _MISSING:
            env[f"_default{i}"] = f.default
            default = f"_default{i}"
        else:  # a field the JSON may not leave out: let the checked decoder say so
            default = "_not_plain()"
        if f.name == "extra":
            assign.append((f.name, "extra"))
            continue
        if "key" not in f.metadata:
            lines.append(f"    {local} = {default}")
        else:
            lines += [f"    v = data.get({f.metadata['key']!r}, _MISSING)",
                      "    if v is _MISSING:",
                      f"        {local} = {default}",
                      "    else:",
                      "        found += 1",
                      f"        {local} = None if v is None else {_plain(hints[f.name], 'v', env, 0)}"]
        assign.append((f.name, local))
    lines += ["    extra = {} if found == len(data) else {k: x for k, x in data.items() if k not in _known}",
              "    obj = _new(_cls)"]
    lines += [f"    obj.{name} = {local}" for name, local in assign]
    lines.append("    return obj")
    exec("\n".join(lines) + "\n", env)  # noqa: S102 - generated from the model's own fields
    decode = env["decode"]
    decode.__qualname__ = f"{cls.__qualname__}.<compiled from_json>"
    return decode


def _plain(hint: Any, var: str, env: dict[str, Any], depth: int) -> str:
    """An expression taking *var* (not None) as a value of *hint*, or raising ``_NotPlain``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _plain(next(a for a in typing.get_args(hint) if a is not type(None)), var, env, depth)
    if hint is Any or hint is bytes:
        return var
    if hint in (str, int, bool):
        return f"({var} if {var}.__class__ is {hint.__name__} else _not_plain())"
    item_var = f"x{depth}"
    if isinstance(hint, type) and issubclass(hint, JSONModel):
        name = f"_decode_{hint.__name__}_{id(hint):x}"
        env[name] = _FAST_DECODERS.get(hint) or _fast_decoder(hint)
        return f"{name}({var})"
    if origin is list:
        (item,) = typing.get_args(hint)
        if item is Any:
            return f"({var}[:] if {var}.__class__ is list else _not_plain())"
        if isinstance(item, type) and issubclass(item, JSONModel):  # a null entry is an empty model, as Go has it
            each = _plain(item, f"({{}} if {item_var} is None else {item_var})", env, depth + 1)
        else:
            each = f"(None if {item_var} is None else {_plain(item, item_var, env, depth + 1)})"
        return f"([{each} for {item_var} in {var}] if {var}.__class__ is list else _not_plain())"
    if origin is dict:
        _k, item = typing.get_args(hint)
        key_var = f"k{depth}"
        each = item_var if item is Any else f"(None if {item_var} is None else {_plain(item, item_var, env, depth + 1)})"
        return (f"({{({key_var} if {key_var}.__class__ is str else _not_plain()): {each} "
                f"for {key_var}, {item_var} in {var}.items()}} if {var}.__class__ is dict else _not_plain())")
    return "_not_plain()"  # a type the checked decoder reports


def _encoder(cls: type) -> Callable[[Any], dict[str, Any]]:
    """Compile *cls*'s ``to_json``: each keyed field in order, then the unknown keys."""
    env: dict[str, Any] = {"_SCALARS": _SCALARS, "_encode": _encode, "_EMPTYABLE": _EMPTYABLE}
    lines = ["def encode(self):", "    out = {}"]
    for attr, json_key, omitempty, _decode in _fields(cls):
        skip = "v is not None and not (isinstance(v, _EMPTYABLE) and not v)" if omitempty else "v is not None"
        lines += [f"    v = self.{attr}",
                  f"    if {skip}:",
                  f"        out[{json_key!r}] = v if v.__class__ in _SCALARS else _encode(v)"]
    lines += ["    if self.extra:",
              "        for k, x in self.extra.items():",
              "            if k not in out:",
              "                out[k] = x",
              "    return out"]
    exec("\n".join(lines) + "\n", env)  # noqa: S102 - generated from the model's own fields
    encode = env["encode"]
    encode.__qualname__ = f"{cls.__qualname__}.<compiled to_json>"
    _ENCODERS[cls] = encode
    return encode
