"""Reading YAML with errors that point at the file, line and column.

:func:`load` returns plain data plus the position of every mapping key and
list item, so later checks (types, unknown fields, bad values) can report
``lima.yaml:12:3: images[0].location: expected a string``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from .errors import ConfigError


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
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error: {exc}") from None
    doc = Document(None, source)
    if node is None:
        doc.data = {}
        return doc
    try:
        doc.data = _construct(node, "", doc.positions)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: {exc.problem}") from None
    return doc


def _construct(node: yaml.Node, path: str, positions: dict[str, tuple[int, int]]) -> Any:
    positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        loader = yaml.SafeLoader("")
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if not isinstance(key, (str, int, float, bool)):
                raise yaml.constructor.ConstructorError(None, None, "mapping keys must be plain values",
                                                        key_node.start_mark)
            key = str(key)
            child = f"{path}.{key}" if path else key
            positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _construct(value_node, child, positions)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, f"{path}[{i}]", positions) for i, item in enumerate(node.value)]
    loader = yaml.SafeLoader("")
    return loader.construct_object(node, deep=True)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
