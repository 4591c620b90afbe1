"""Reading YAML with errors that point at the file, line and column.

:func:`load` returns plain data plus the position of every mapping key and
list item, so later checks (types, unknown fields, bad values) can report
``lima.yaml:12:3: images[0].location: expected a string``.

A lima.yaml is small. Data that nests deeper than :data:`MAX_DEPTH`, refers to
itself, or expands through aliases to more than :data:`MAX_NODES` values (a
"billion laughs" file) is refused with a ConfigError, never a hang or a
RecursionError.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from .errors import ConfigError

MAX_DEPTH = 64
MAX_NODES = 100_000
#: libyaml when PyYAML has it: fast, and it limits nesting itself (the pure-Python parser recurses)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclasses.dataclass
class Document:
    data: Any
    source: str
    #: "images[0].location" -> (line, column), 1-based
    positions: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    def where(self, path: str) -> str:
        """``source:line:col`` for *path* (or its nearest known parent), else ``source``."""
        probe = path
        while probe:
            if probe in self.positions:
                line, col = self.positions[probe]
                return f"{self.source}:{line}:{col}"
            probe = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", probe)
            if probe == path:
                break
            path = probe
        return self.source

    def error(self, exc: ConfigError) -> ConfigError:
        """*exc* (whose message starts with a field path) prefixed with the position."""
        message = exc.message
        path = message.split(":", 1)[0]
        return ConfigError(f"{self.where(path)}: {message}")


def load(text: str, source: str) -> Document:
    """Parse *text*; ConfigError with ``source:line:col`` on a syntax error."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{source}: the YAML nests too deeply") from None
    doc = Document(None, source)
    if node is None:
        doc.data = {}
        return doc
    try:
        doc.data = _construct(node, "", doc.positions, _Budget(source))
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: {exc.problem}") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError) as exc:
        # e.g. a merge key (<<) that includes itself, a timestamp out of range
        raise ConfigError(f"{source}: cannot read the YAML: {' '.join(str(exc).split()) or type(exc).__name__}") \
            from None
    return doc


class _Budget:
    """Counts the values constructed, so aliases cannot multiply them without bound."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = 0

    def spend(self, node: yaml.Node, depth: int) -> None:
        self.nodes += 1
        where = f"{self.source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
        if self.nodes > MAX_NODES:
            raise ConfigError(f"{where}: more than {MAX_NODES} values once YAML aliases are expanded; "
                              "a lima.yaml is far smaller")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where}: the YAML nests deeper than {MAX_DEPTH} levels, or an alias refers "
                              "to the value that holds it")


def _construct(node: yaml.Node, path: str, positions: dict[str, tuple[int, int]], budget: _Budget,
               depth: int = 1) -> Any:
    budget.spend(node, depth)
    positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        loader = yaml.SafeLoader("")
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(None, None, "mapping keys must be plain values",
                                                        key_node.start_mark)
            key = loader.construct_object(key_node)
            if not isinstance(key, (str, int, float, bool)):
                raise yaml.constructor.ConstructorError(None, None, "mapping keys must be plain values",
                                                        key_node.start_mark)
            key = str(key)
            child = f"{path}.{key}" if path else key
            positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _construct(value_node, child, positions, budget, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, f"{path}[{i}]", positions, budget, depth + 1) for i, item in enumerate(node.value)]
    loader = yaml.SafeLoader("")
    return loader.construct_object(node, deep=True)


def check_shape(data: Any, source: str) -> Any:
    """*data* (from any YAML loader), if it is a tree of at most MAX_NODES values and MAX_DEPTH levels.

    A recursive value (``&a [*a]``) counts as too deep. Iterative, so it never
    recurses itself.
    """
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        obj, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(f"{source}: more than {MAX_NODES} values once YAML aliases are expanded; "
                              "a lima.yaml is far smaller")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: the YAML nests deeper than {MAX_DEPTH} levels, or an alias refers to "
                              "the value that holds it")
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in obj.values())
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj)
    return data


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
