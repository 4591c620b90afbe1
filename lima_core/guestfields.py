"""Defaults and validation of lima.yaml's guest-side fields, as Lima's FillDefault and Validate have them.

provision, probes, portForwards, copyToHost, param, env, dns, hostResolver,
caCerts, timezone, containerd, guestInstallPrefix, upgradePackages,
propagateProxyEnv, additionalDisks, minimumLimaVersion, user.passwordlessSudo,
and what plain mode turns off. Errors name the field's path
(``provision[2].path: ...``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from pathlib import Path
from typing import Any

from ._version import LIMA_COMPAT_VERSION
from .errors import ConfigError
from .limatype import CACertificates, Containerd, HostResolver, LimaYAML, PortForward, Probe, Provision

log = logging.getLogger("lima_core")

PROVISION_MODES = ("system", "user", "boot", "dependency", "data", "yq", "ansible")
#: provision fields that only some modes take (Lima: "can only be set when mode is ...")
_MODE_FIELDS: dict[str, tuple[str, ...]] = {
    "script": ("system", "user", "boot", "dependency"),
    "playbook": ("ansible",),
    "content": ("data",),
    "overwrite": ("data",),
    "owner": ("data", "yq"),
    "path": ("data", "yq"),
    "permissions": ("data", "yq"),
    "expression": ("yq",),
    "format": ("yq",),
    "skip_default_dependency_resolution": ("dependency",),
}
_PROVISION_KEYS = {"script": "script", "playbook": "playbook", "content": "content", "overwrite": "overwrite",
                   "owner": "owner", "path": "path", "permissions": "permissions", "expression": "expression",
                   "format": "format", "skip_default_dependency_resolution": "skipDefaultDependencyResolution"}
YQ_FORMATS = ("auto", "csv", "ini", "json", "lua", "props", "properties", "toml", "tsv", "xml", "yaml", "yml")
PROTOS = ("tcp", "udp", "any")
DEFAULT_GUEST_INSTALL_PREFIX = "/usr/local"
_PARAM_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")
_DISK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")


# -- defaults ---------------------------------------------------------------------------------


def fill_defaults(cfg: LimaYAML) -> None:
    """Lima's FillDefault for the guest-side fields. Idempotent."""
    for p in cfg.provision or []:
        p.mode = p.mode or "system"
        if p.mode == "data":
            p.content = "" if p.content is None else p.content
            p.owner = p.owner or "root:root"
            p.permissions = p.permissions or "644"
            p.overwrite = True if p.overwrite is None else p.overwrite
        elif p.mode == "yq":
            p.format = p.format or "auto"
            p.owner = p.owner or "root:root"
            p.permissions = p.permissions or "644"
    probes = cfg.probes or []
    for i, probe in enumerate(probes):
        probe.mode = probe.mode or "readiness"
        probe.description = probe.description or f"user probe {i + 1}/{len(probes)}"
    for rule in cfg.port_forwards or []:
        _fill_port_forward(rule)
    cfg.containerd = cfg.containerd or Containerd()
    if cfg.containerd.system is None:
        cfg.containerd.system = False
    if cfg.containerd.user is None:
        # Lima's default: nerdctl-full for the user on the arches it ships archives for.
        cfg.containerd.user = cfg.os == "Linux" and cfg.arch in ("x86_64", "aarch64")
    cfg.guest_install_prefix = cfg.guest_install_prefix or DEFAULT_GUEST_INSTALL_PREFIX
    if cfg.upgrade_packages is None:
        cfg.upgrade_packages = False
    if cfg.propagate_proxy_env is None:
        cfg.propagate_proxy_env = True
    cfg.host_resolver = cfg.host_resolver or HostResolver()
    if cfg.host_resolver.enabled is None:
        cfg.host_resolver.enabled = True
    if cfg.host_resolver.ipv6 is None:
        cfg.host_resolver.ipv6 = False
    cfg.ca_certs = cfg.ca_certs or CACertificates()
    if cfg.ca_certs.remove_defaults is None:
        cfg.ca_certs.remove_defaults = False
    if cfg.timezone is None:
        # Lima: the host's zone, except on Windows hosts (where wsl2 runs): none.
        cfg.timezone = "" if cfg.vm_type == "wsl2" or os.name == "nt" else host_timezone()
    if cfg.mount_inotify is None:
        cfg.mount_inotify = False
    if cfg.user is not None and cfg.user.passwordless_sudo is None:
        cfg.user.passwordless_sudo = True
    if cfg.plain:
        _fix_up_for_plain_mode(cfg)


def _fill_port_forward(rule: PortForward) -> None:
    """Lima's FillPortForwardDefaults."""
    if rule.guest_ip_must_be_zero and not rule.guest_ip:
        rule.guest_ip = "0.0.0.0"
    rule.guest_ip = rule.guest_ip or "127.0.0.1"
    if rule.guest_ip_must_be_zero is None:
        rule.guest_ip_must_be_zero = rule.guest_ip == "0.0.0.0"
    if not rule.guest_port_range:
        rule.guest_port_range = [rule.guest_port, rule.guest_port] if rule.guest_port else [1, 65535]
    rule.host_ip = rule.host_ip or "127.0.0.1"
    if not rule.host_port_range and not rule.host_socket:
        rule.host_port_range = [rule.host_port, rule.host_port] if rule.host_port else list(rule.guest_port_range)
    rule.proto = rule.proto or "any"
    for attr in ("reverse", "ignore", "static"):
        if getattr(rule, attr) is None:
            setattr(rule, attr, False)


def _fix_up_for_plain_mode(cfg: LimaYAML) -> None:
    """What Lima turns off in plain mode: non-static port forwards, mounts, containerd, the timezone."""
    cfg.port_forwards = [rule for rule in cfg.port_forwards or [] if rule.static]
    cfg.mounts = []
    assert cfg.containerd is not None
    cfg.containerd.system = cfg.containerd.user = False
    cfg.timezone = ""


def host_timezone() -> str:
    """The host's zone name (Lima's default): /etc/timezone if it names a zone, else /etc/localtime's target."""
    zoneinfo = _zoneinfo_root()
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name and zoneinfo is not None and (zoneinfo / name).is_file():
            return name
    except (OSError, UnicodeDecodeError):
        pass
    try:
        target = Path(os.path.realpath("/etc/localtime"))
    except OSError:
        return ""
    if zoneinfo is not None and target.is_relative_to(zoneinfo):
        return str(target.relative_to(zoneinfo))
    return ""


def _zoneinfo_root() -> Path | None:
    for root in ("/usr/share/zoneinfo", "/usr/lib/zoneinfo", "/usr/share/lib/zoneinfo"):
        if Path(root, "Etc", "UTC").exists():
            return Path(os.path.realpath(root))
    return None


# -- validation -------------------------------------------------------------------------------


def validate(cfg: LimaYAML) -> None:
    """Lima's Validate for the guest-side fields; ConfigError names the field."""
    _validate_version(cfg.minimum_lima_version)
    for i, p in enumerate(cfg.provision or []):
        _validate_provision(p, f"provision[{i}]")
    for i, probe in enumerate(cfg.probes or []):
        _validate_probe(probe, f"probes[{i}]")
    for i, rule in enumerate(cfg.port_forwards or []):
        _validate_port_forward(rule, f"portForwards[{i}]")
    for i, copy in enumerate(cfg.copy_to_host or []):
        for attr in ("guest", "host"):
            value = getattr(copy, attr)
            if not value:
                raise ConfigError(f"copyToHost[{i}].{attr}: must be set")
            if not value.startswith(("/", "~", "{{")):
                raise ConfigError(f"copyToHost[{i}].{attr}: {value!r} must be an absolute path")
    for key, value in (cfg.param or {}).items():
        if not _PARAM_KEY.fullmatch(key):
            raise ConfigError(f"param: {key!r} is not a valid name; use letters, digits and '_', starting with "
                              "a letter (each becomes the shell variable PARAM_<name> in the guest)")
        if not all(c.isprintable() or c == "\t" for c in value):
            raise ConfigError(f"param.{key}: the value must be printable text on one line")
    for key in cfg.env or {}:
        if not key or "=" in key or not key.isprintable() or " " in key:
            raise ConfigError(f"env: {key!r} is not a valid environment variable name")
    for i, address in enumerate(cfg.dns or []):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"dns[{i}]: {address!r} is not an IP address") from None
    if cfg.dns and cfg.host_resolver is not None and cfg.host_resolver.enabled:
        raise ConfigError("dns: must be empty while hostResolver.enabled is true (set hostResolver.enabled: false "
                          "to use these resolvers)")
    for i, disk in enumerate(cfg.additional_disks or []):
        name = disk.get("name") if isinstance(disk, dict) else disk
        if not isinstance(name, str) or not _DISK_NAME.fullmatch(name):
            raise ConfigError(f"additionalDisks[{i}]: {name!r} is not a valid disk name")
    if cfg.user is not None and cfg.user.passwordless_sudo is False and not cfg.plain:
        raise ConfigError("user.passwordlessSudo: false needs plain: true (as in Lima: the host agent's "
                          "requirements use sudo)")


def _validate_version(wanted: str | None) -> None:
    if wanted is None:
        return
    want = _SEMVER.fullmatch(wanted.strip())
    if want is None:
        raise ConfigError(f"minimumLimaVersion: {wanted!r} is not a semantic version (like 1.1.0)")
    have = _SEMVER.fullmatch(LIMA_COMPAT_VERSION)
    assert have is not None
    if tuple(map(int, want.groups())) > tuple(map(int, have.groups())):
        raise ConfigError(f"minimumLimaVersion: the template requires Lima {wanted}; lima-core follows Lima "
                          f"{LIMA_COMPAT_VERSION}")


def _validate_provision(p: Provision, where: str) -> None:
    if p.mode not in PROVISION_MODES:
        raise ConfigError(f"{where}.mode: {p.mode!r} is not a provision mode; use one of "
                          f"{', '.join(PROVISION_MODES)}")
    for attr, modes in _MODE_FIELDS.items():
        if getattr(p, attr) is not None and p.mode not in modes:
            raise ConfigError(f"{where}.{_PROVISION_KEYS[attr]}: can only be set when mode is "
                              f"{' or '.join(repr(m) for m in modes)}")
    if p.file is not None and p.file.url:
        raise ConfigError(f"{where}.file: must be embedded into the script when the instance is created")
    if p.mode in _MODE_FIELDS["script"] and not (p.script or "").strip():
        raise ConfigError(f"{where}.script: must not be empty for mode {p.mode!r}")
    if p.mode in ("data", "yq"):
        if not p.path or not p.path.startswith(("/", "{{")):
            raise ConfigError(f"{where}.path: {p.path!r} must be an absolute path in the guest")
        if not re.fullmatch(r"[0-7]{3,4}", p.permissions or ""):
            raise ConfigError(f"{where}.permissions: {p.permissions!r} is not an octal mode such as 644")
    if p.mode == "yq":
        if not (p.expression or "").strip():
            raise ConfigError(f"{where}.expression: must not be empty for mode 'yq'")
        if p.format not in YQ_FORMATS:
            raise ConfigError(f"{where}.format: {p.format!r} is not one of {', '.join(YQ_FORMATS)}")
    if p.mode == "ansible":
        log.warning("%s: mode 'ansible' is deprecated in Lima; run ansible-playbook yourself after "
                    "`lima start`", where)
        if not p.playbook:
            raise ConfigError(f"{where}.playbook: must be set for mode 'ansible'")


def _validate_probe(probe: Probe, where: str) -> None:
    if probe.mode != "readiness":
        raise ConfigError(f"{where}.mode: {probe.mode!r} is not supported; the only probe mode is 'readiness'")
    if probe.file is not None and probe.file.url:
        raise ConfigError(f"{where}.file: must be embedded into the script when the instance is created")
    if not (probe.script or "").startswith("#!"):
        raise ConfigError(f"{where}.script: must start with an interpreter line such as '#!/bin/bash'")


def _valid_port(port: int, where: str) -> None:
    if not 1 <= port <= 65535 or port == 22:
        raise ConfigError(f"{where}: {port} is not a usable port (1-65535, not 22)")


def _validate_port_forward(rule: PortForward, where: str) -> None:
    guest_range = rule.guest_port_range or []
    if rule.guest_port:
        if rule.guest_socket:
            raise ConfigError(f"{where}.guestPort: cannot be set together with guestSocket")
        _valid_port(rule.guest_port, f"{where}.guestPort")
        if guest_range and guest_range[0] != rule.guest_port:
            raise ConfigError(f"{where}.guestPortRange: must start at guestPort ({rule.guest_port})")
    if rule.host_port:
        if rule.host_socket:
            raise ConfigError(f"{where}.hostPort: cannot be set together with hostSocket")
        _valid_port(rule.host_port, f"{where}.hostPort")
        if rule.host_port_range and rule.host_port_range[0] != rule.host_port:
            raise ConfigError(f"{where}.hostPortRange: must start at hostPort ({rule.host_port})")
    for attr, name in (("guest_port_range", "guestPortRange"), ("host_port_range", "hostPortRange")):
        span = getattr(rule, attr)
        if not span:
            continue
        if len(span) != 2:
            raise ConfigError(f"{where}.{name}: must be [first, last]")
        for port in span:
            _valid_port(port, f"{where}.{name}")
        if span[0] > span[1]:
            raise ConfigError(f"{where}.{name}: {span[0]} is after {span[1]}")
    if rule.host_port_range and guest_range and \
            rule.host_port_range[1] - rule.host_port_range[0] != guest_range[1] - guest_range[0]:
        raise ConfigError(f"{where}.hostPortRange: must span as many ports as guestPortRange")
    if rule.guest_socket and not rule.guest_socket.startswith(("/", "{{")):
        raise ConfigError(f"{where}.guestSocket: {rule.guest_socket!r} must be an absolute path in the guest")
    if rule.host_socket and guest_range and guest_range[0] != guest_range[1] and not rule.guest_socket:
        raise ConfigError(f"{where}.hostSocket: needs a single guestPort or a guestSocket")
    if rule.proto not in PROTOS:
        raise ConfigError(f"{where}.proto: {rule.proto!r} is not one of {', '.join(PROTOS)}")
    if rule.reverse and not (rule.guest_socket and rule.host_socket):
        raise ConfigError(f"{where}.reverse: needs both guestSocket and hostSocket")
    if rule.guest_ip_must_be_zero and rule.guest_ip != "0.0.0.0":
        raise ConfigError(f"{where}.guestIPMustBeZero: needs guestIP 0.0.0.0")
    for attr, name in (("guest_ip", "guestIP"), ("host_ip", "hostIP")):
        value = getattr(rule, attr)
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ConfigError(f"{where}.{name}: {value!r} is not an IP address") from None


def check_params_used(own: dict[str, Any]) -> None:
    """Lima's validateParamIsUsed: each ``param`` of the instance's own lima.yaml must appear somewhere as
    ``{{.Param.K}}`` or ``PARAM_K``."""
    params = own.get("param")
    if not isinstance(params, dict):
        return
    haystack = _param_places(own)
    for name in params:
        if name == "internal_netplanOptional":
            continue
        if not re.search(r"\{\{\s*-?\s*\.Param\." + re.escape(str(name)) + r"\b", haystack) and \
                not re.search(r"\bPARAM_" + re.escape(str(name)) + r"\b", haystack):
            raise ConfigError(f"param.{name}: not used anywhere (use it as {{{{.Param.{name}}}}} or "
                              f"$PARAM_{name} in a provision, probe, portForward, copyToHost or mount)")


def _entries(own: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The mappings in list *key* of *own* (a wrongly typed value is left to validation)."""
    value = own.get(key)
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


#: where Lima looks for a param's use: list field -> the keys of its entries
_PARAM_PLACES = {"provision": ("script", "content", "expression", "owner", "path", "permissions", "playbook"),
                 "probes": ("script", "description", "hint"), "copyToHost": ("guest", "host"),
                 "portForwards": ("guestSocket", "hostSocket"), "mounts": ("location", "mountPoint")}


def _param_places(own: dict[str, Any]) -> str:
    parts: list[str] = []
    for field, keys in _PARAM_PLACES.items():
        for entry in _entries(own, field):
            parts += [str(entry.get(k) or "") for k in keys]
            if field == "provision" and entry.get("playbook"):
                try:
                    parts.append(Path(str(entry["playbook"])).read_text())
                except (OSError, UnicodeDecodeError):
                    pass
    return "\n".join(parts)
