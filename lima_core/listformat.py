"""``lima list``'s output: the fields of an instance, and ``--format`` as Go templates.

``lima list --format`` takes json, yaml, table, or a Go template as ``limactl list`` does,
of which lima-core evaluates the part scripts use: text, ``{{.Field}}`` (nested:
``{{.Config.CPUs}}``, ``{{.Param.KEY}}``), ``{{json .}}`` / ``{{json .Field}}``,
``{{yaml .}}`` / ``{{yaml .Field}}``, with ``{{-`` and ``-}}`` trimming. Field names are
limactl's (Go's: ``Name``, ``VMType``, ``SSHLocalPort``), matched against the JSON keys
regardless of case. Any other action (``if``, ``range``, pipelines, other functions) is
refused, naming it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ._jsonmodel import JSONModel
from .errors import ConfigError
from .limatype import Instance

#: limactl's field names (Go's) -> lima-core's JSON keys, where lower-casing does not map them
_GO_NAMES = {"Networks": "network"}
#: fields limactl still fills but calls deprecated (they come from `lima info` now): not in --list-fields
DEPRECATED = ("HostOS", "HostArch", "LimaHome", "IdentityFile")

_ACTION = re.compile(r"(\s*)\{\{(-?)\s*(.*?)\s*(-?)\}\}(\s*)", re.S)
_PATH = re.compile(r"^\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$")


def go_name(key: str) -> str:
    """The Go field name of an Instance JSON key (``vmType`` -> ``VMType``)."""
    special = {v: k for k, v in _GO_NAMES.items()}
    if key in special:
        return special[key]
    words = {"vmType": "VMType", "cpus": "CPUs", "sshLocalPort": "SSHLocalPort", "sshConfigFile": "SSHConfigFile",
             "hostAgentPID": "HostAgentPID", "driverPID": "DriverPID", "sshAddress": "SSHAddress"}
    return words.get(key, key[:1].upper() + key[1:])


def field_names() -> list[str]:
    """``lima list --list-fields``: limactl's field names, sorted."""
    keys = [f.metadata["key"] for f in dataclasses.fields(Instance) if "key" in f.metadata]
    return sorted(go_name(k) for k in keys)


def data(inst: Instance, globals_: dict[str, str]) -> dict[str, Any]:
    """Every field of *inst* as JSON has it, zero values included (Go templates see them), plus the
    deprecated host fields."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Instance):
        if "key" not in f.metadata:
            continue
        value = getattr(inst, f.name)
        if isinstance(value, JSONModel):
            value = value.to_json()
        out[f.metadata["key"]] = value
    out.update(globals_)
    return out


def render(template: str, value: dict[str, Any]) -> str:
    """*template* (a Go template of the supported kind) for one instance's *value* (from :func:`data`)."""

    def sub(match: re.Match[str]) -> str:
        before, trim_left, action, trim_right, after = match.groups()
        return ("" if trim_left else before) + _action(action, value) + ("" if trim_right else after)

    return _ACTION.sub(sub, template)


def check(template: str) -> None:
    """ConfigError for an action lima-core does not evaluate (before any instance is read)."""
    for match in _ACTION.finditer(template):
        _parse(match[3])


def _parse(action: str) -> tuple[str | None, str]:
    words = action.split()
    if len(words) == 1 and _PATH.match(words[0]):
        return None, words[0]
    if len(words) == 2 and words[0] in ("json", "yaml") and _PATH.match(words[1]):
        return words[0], words[1]
    raise ConfigError(f"--format: the template action {{{{{action}}}}} is not supported; lima-core evaluates "
                      "{{.Field}}, {{.Field.Sub}}, {{json .}}, {{json .Field}} and {{yaml .Field}} "
                      "(see `lima list --list-fields`)")


def _action(action: str, value: dict[str, Any]) -> str:
    func, path = _parse(action)
    got = _lookup(value, path)
    if func == "json":
        return json.dumps(got, ensure_ascii=False)
    if func == "yaml":
        from .yamlfile import dump

        return "---\n" + dump(got).rstrip("\n")
    return _go_string(got)


def _lookup(value: Any, path: str) -> Any:
    node = value
    walked = ""
    for name in [p for p in path.split(".") if p]:
        walked += "." + name
        if not isinstance(node, dict):
            raise ConfigError(f"--format: {walked}: {walked.rsplit('.', 1)[0] or '.'} has no fields")
        key = _find_key(node, name)
        if key is None:
            if node is value:
                raise ConfigError(f"--format: there is no field {name!r}; `lima list --list-fields` lists them")
            return None  # a map without that key: Go prints <no value>
        node = node[key]
    return node


def _find_key(node: dict[str, Any], name: str) -> str | None:
    if name in node:
        return name
    wanted = _GO_NAMES.get(name, name).lower()
    for key in node:
        if str(key).lower() == wanted:
            return key
    return None


def _go_string(value: Any) -> str:
    """*value* printed as Go's text/template prints it."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_string(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) \
            + "]"
    return str(value)
