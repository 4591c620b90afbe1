"""Lima's edit flags (``cmd/limactl/editflags``): ``--cpus 2`` and the like, turned into yq expressions.

``create`` and ``start`` take every flag; ``edit``, ``clone`` and ``rename`` take those that can
change an existing instance. Each flag becomes the expression Lima builds for it, applied in
Lima's order; ``--set`` expressions are applied where Lima applies them. A flag that can only
shape a new instance (``--arch``, ``--containerd``, ``--plain``) is named in a warning and
skipped when the instance exists, as in Lima.

The options are declared once here and added to each command's signature by
:func:`edit_flags`, so typer sees them as the command's own parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable
from typing import Any

import typer

from ..errors import ConfigError

log = logging.getLogger("lima_core")

_CONTAINERD = {"user": (True, False), "system": (False, True), "user+system": (True, True),
               "system+user": (True, True), "none": (False, False)}
_PARAM = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)=(.*)$", re.S)


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str  # the parameter name (--mount-only -> mount_only)
    option: str
    annotation: Any
    help: str
    create_only: bool = False
    #: only for new instances: warned about and skipped for an existing one (Lima's onlyValidForNewInstances)
    new_only: bool = False


# Lima's flags, in the order Lima applies their expressions.
FLAGS = (
    Flag("cpus", "--cpus", str, "number of CPUs"),
    Flag("dns", "--dns", list[str], "custom DNS server (repeatable or comma-separated; disables the host resolver)"),
    Flag("memory", "--memory", str, "memory in GiB, e.g. 4 or 0.5"),
    Flag("mount", "--mount", list[str], "directory to mount, ':w' suffix for writable (repeatable or comma-separated)"),
    Flag("mount_only", "--mount-only", list[str], "like --mount, but replaces the existing mounts"),
    Flag("mount_none", "--mount-none", bool, "remove all mounts"),
    Flag("mount_type", "--mount-type", str, "mount type (reverse-sshfs, 9p, virtiofs)"),
    Flag("vm_type", "--vm-type", str, "virtual machine type (a driver; see `lima drivers list`)"),
    Flag("mount_inotify", "--mount-inotify", bool, "enable inotify for mounts (experimental)"),
    Flag("mount_writable", "--mount-writable", bool, "make all mounts writable"),
    Flag("network", "--network", list[str], "additional network, e.g. vzNAT or lima:shared (repeatable)"),
    Flag("rosetta", "--rosetta", bool, "enable Rosetta (for vz instances)"),
    Flag("set", "--set", list[str], "modify the template in place, using yq syntax (repeatable; the host's "
         "environment and files are out of reach)"),
    Flag("video", "--video", bool, "enable video output (slows QEMU down)"),
    Flag("ssh_port", "--ssh-port", str, "SSH port on the host (0 for a free one)"),
    Flag("disk", "--disk", str, "disk size in GiB"),
    Flag("arch", "--arch", str, "machine architecture (x86_64, aarch64, riscv64, armv7l, s390x, ppc64le)",
         create_only=True, new_only=True),
    Flag("containerd", "--containerd", str, "containerd mode (user, system, user+system, none)", create_only=True,
         new_only=True),
    Flag("plain", "--plain", bool, "plain mode: no mounts, port forwards, containerd, ...", create_only=True,
         new_only=True),
    Flag("port_forward", "--port-forward", list[str], "port forward HOST:GUEST, ',static=true' for a static one "
         "(repeatable)", create_only=True),
    Flag("param", "--param", list[str], "template parameter KEY=VALUE (repeatable)", create_only=True),
    Flag("nested_virt", "--nested-virt", bool, "enable nested virtualization", create_only=True),
)
BY_NAME = {f.name: f for f in FLAGS}


@dataclasses.dataclass
class EditFlags:
    """The values given on the command line (None or []: not given; a flag is True or False when given)."""

    values: dict[str, Any]

    def given(self) -> list[str]:
        return [f.option for f in FLAGS if self.values.get(f.name) not in (None, [])]


def _declaration(flag: Flag) -> inspect.Parameter:
    if flag.annotation is bool:
        # --video and --no-video (Lima's --video=false, rewritten so by the CLI's edge); None: not given
        decl = flag.option if flag.name == "mount_none" else f"{flag.option}/--no-{flag.option[2:]}"
        default = typer.Option(None, decl, help=flag.help, show_default=False)
    elif flag.annotation == list[str]:
        default = typer.Option([], flag.option, help=flag.help, show_default=False, metavar="STRINGS")
    else:
        metavar = {"cpus": "INT", "ssh_port": "PORT", "memory": "GIB", "disk": "GIB"}.get(flag.name, "STRING")
        default = typer.Option(None, flag.option, help=flag.help, show_default=False, metavar=metavar)
    return inspect.Parameter(flag.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=flag.annotation)


def edit_flags(*, create: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add Lima's edit flags (``create``: all of them) to a command; it receives them as ``flags``."""
    chosen = [f for f in FLAGS if create or not f.create_only]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "flags"]
        params = own + [_declaration(f) for f in chosen]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in chosen}
            return fn(**kwargs, flags=EditFlags(values))

        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


# -- expressions ------------------------------------------------------------------------------------


def expressions(flags: EditFlags, *, new_instance: bool) -> list[tuple[str, str]]:
    """Lima's ``editflags.YQExpressions``: ``(flag, expression)`` for the flags given, in Lima's order."""
    v = flags.values
    out: list[tuple[str, str]] = []
    for flag in FLAGS:
        value = v.get(flag.name)
        if value is None or value == []:
            continue
        if flag.new_only and not new_instance:
            shown = "" if value is True else f"={str(value).lower() if isinstance(value, bool) else value}"
            log.warning("`%s` is not applicable to an existing instance (create a new one with `lima create %s%s "
                        "--name=NAME`)", flag.option, flag.option, shown)
            continue
        if flag.name == "mount_inotify":
            log.warning("`--mount-inotify` is experimental")
        for expr in _EXPRESSIONS[flag.name](value, v):
            out.append((f"--set {expr!r}" if flag.name == "set" else flag.option, expr))
    return out


def _json(value: Any) -> str:
    return json.dumps(value)


def _number(text: str, option: str, *, integer: bool, minimum: float) -> str:
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{option}: {text!r} is not {kind}") from None
    if number < minimum:
        raise ConfigError(f"{option}: {text} is too small (at least {minimum:g})")
    if integer:
        return str(number)
    return f"{number:g}"


def _words(values: list[str]) -> list[str]:
    """pflag's StringSlice: repeatable, and each value comma-separated."""
    return [w.strip() for v in values for w in v.split(",") if w.strip()]


def _mount_list(values: list[str]) -> list[dict[str, Any]]:
    out = []
    for word in _words(values):
        writable = word.endswith(":w")
        location = os.path.abspath(os.path.expanduser(word[:-2] if writable else word))
        out.append({"location": location, "mountPoint": location, "writable": writable})
    return out


def _mount(value: list[str], v: dict[str, Any]) -> list[str]:
    if v.get("mount_only"):
        raise ConfigError("flag `--mount` conflicts with `--mount-only`")
    new = _mount_list(value)
    points = ",".join(_json(m["mountPoint"]) for m in new)
    # The flags' mounts take precedence over the template's: those at the same mount point go.
    return [f".mounts = {_json(new)} + [(.mounts // [])[] | select((.mountPoint // .location) | IN({points}) | not)]"]


def _mount_none(value: bool, v: dict[str, Any]) -> list[str]:
    for other in ("mount", "mount_only"):
        if v.get(other):
            raise ConfigError(f"flag `--mount-none` conflicts with `{BY_NAME[other].option}`")
    return [".mounts = null"]


def _dns(value: list[str], v: dict[str, Any]) -> list[str]:
    servers = []
    for word in _words(value):
        try:
            servers.append(str(ipaddress.ip_address(word)))
        except ValueError:
            raise ConfigError(f"--dns: {word!r} is not an IP address") from None
    log.warning("disabling the host resolver, as custom DNS servers (%s) are given", ", ".join(servers))
    return [f".dns += {_json(servers)} | .dns |= unique | .hostResolver.enabled = false"]


def _network(value: list[str], v: dict[str, Any]) -> list[str]:
    entries: list[dict[str, Any]] = []
    for word in _words(value):
        if word == "vzNAT":
            entries.append({"vzNAT": True})
        elif word.startswith("lima:"):
            entries.append({"lima": word.removeprefix("lima:")})
        else:
            raise ConfigError(f"--network: the name must be \"vzNAT\" or \"lima:*\", got {word!r}")
    return [f".networks += {_json(entries)} | .networks |= unique_by(.lima)"]


def _port_forward(value: list[str], v: dict[str, Any]) -> list[str]:
    rules = []
    for spec in value:
        parts = [p.strip() for p in spec.split(",")]
        ports = [p.strip() for p in parts[0].split(":")]
        if len(parts) > 2 or len(ports) != 2:
            raise ConfigError(f"--port-forward: {spec!r} is not HOST:GUEST or HOST:GUEST,static=true")
        static = False
        if len(parts) == 2:
            key, _, flag = parts[1].partition("=")
            if key != "static" or flag.lower() not in ("true", "false", "1", "0", "t", "f"):
                raise ConfigError(f"--port-forward: {parts[1]!r} is not static=true or static=false")
            static = flag.lower() in ("true", "1", "t")
        host, guest = (int(_number(p, "--port-forward", integer=True, minimum=0)) for p in ports)
        rules.append({"guestPort": guest, "hostPort": host, "static": static})
    return [f".portForwards += {_json(rules)}"]


def _param(value: list[str], v: dict[str, Any]) -> list[str]:
    out = []
    for word in value:
        match = _PARAM.match(word)
        if not match:
            raise ConfigError(f"--param: {word!r} is not KEY=VALUE (KEY: letters, digits and '_')")
        out.append(f".param.{match[1]} = {_json(match[2])}")
    return out


def _containerd(value: str, v: dict[str, Any]) -> list[str]:
    if value not in _CONTAINERD:
        raise ConfigError(f"--containerd: expected one of user, system, user+system, none; got {value!r}")
    user, system = _CONTAINERD[value]
    return [f".containerd.user = {_json(user)} | .containerd.system = {_json(system)}"]


def _gib(option: str) -> Callable[[str, dict[str, Any]], list[str]]:
    field = option.removeprefix("--")
    return lambda value, v: [f".{field} = {_json(_number(value, option, integer=False, minimum=0) + 'GiB')}"]


_EXPRESSIONS: dict[str, Callable[[Any, dict[str, Any]], list[str]]] = {
    "cpus": lambda value, v: [f".cpus = {_number(value, '--cpus', integer=True, minimum=1)}"],
    "dns": _dns,
    "memory": _gib("--memory"),
    "mount": _mount,
    "mount_only": lambda value, v: [f".mounts = {_json(_mount_list(value))}"],
    "mount_none": _mount_none,
    "mount_type": lambda value, v: [f".mountType = {_json(value)}"],
    "vm_type": lambda value, v: [f".vmType = {_json(value)}"],
    "mount_inotify": lambda value, v: [f".mountInotify = {_json(value)}"],
    "mount_writable": lambda value, v: [f".mounts[].writable = {_json(value)}"],
    "network": _network,
    "rosetta": lambda value, v: [f".vmOpts.vz.rosetta.enabled = {_json(value)} | .vmOpts.vz.rosetta.binfmt = {_json(value)}"],
    "set": lambda value, v: list(value),
    "video": lambda value, v: [f".video.display = {_json('default' if value else 'none')}"],
    "ssh_port": lambda value, v: [f".ssh.localPort = {_number(value, '--ssh-port', integer=True, minimum=0)}"],
    "disk": _gib("--disk"),
    "arch": lambda value, v: [f".arch = {_json(value)}"],
    "containerd": _containerd,
    "plain": lambda value, v: [f".plain = {_json(value)}"],
    "port_forward": _port_forward,
    "param": _param,
    "nested_virt": lambda value, v: [f".nestedVirtualization = {_json(value)}"],
}
