"""The part of Go's text/template that lima.yaml uses: ``{{.Field}}`` and ``{{.Param.Key}}``.

Lima expands these in provision scripts, probes, mount points, socket paths
and copyToHost paths (guest templates: Name, Hostname, UID, User, Home,
Param) and in host paths (host templates: Home, Dir, Name, UID, User, Param,
GlobalTempDir, TempDir, and the deprecated Instance and LimaHome). Any other
action (``if``, pipelines, functions) is refused with its text, rather than
left in place or half-understood.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import ConfigError

# An action with the white space around it, which ``{{-`` and ``-}}`` trim as in Go.
_ACTION = re.compile(r"(\s*)\{\{(-?)\s*(.*?)\s*(-?)\}\}(\s*)", re.S)
_FIELD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?")


def expand(text: str, values: Mapping[str, object], what: str) -> str:
    """*text* with each ``{{.X}}`` / ``{{.Param.K}}`` replaced; ConfigError naming *what* otherwise."""
    if "{{" not in text:
        return text

    def sub(match: re.Match[str]) -> str:
        before, trim_left, action, trim_right, after = match.groups()
        shown = "{{" + action + "}}"
        field = _FIELD.fullmatch(action)
        if field is None:
            raise ConfigError(f"{what}: the template action {shown!r} is not supported; lima-core expands "
                              "only {{.Field}} and {{.Param.Key}}")
        name, sub_key = field[1], field[2]
        if name not in values:
            raise ConfigError(f"{what}: {shown!r} names no template field; the fields are "
                              f"{', '.join('.' + k for k in values)}")
        value = values[name]
        if sub_key is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{what}: {shown!r}: .{name} has no fields")
            if sub_key not in value:
                raise ConfigError(f"{what}: {shown!r}: there is no {name} {sub_key!r} (set it under "
                                  f"{name.lower()}: in lima.yaml)")
            value = value[sub_key]
        elif isinstance(value, Mapping):
            raise ConfigError(f"{what}: {shown!r} is a map; name one of its keys")
        return ("" if trim_left else before) + str(value) + ("" if trim_right else after)

    return _ACTION.sub(sub, text)
