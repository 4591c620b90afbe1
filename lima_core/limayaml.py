"""lima.yaml: layering with _config/default.yaml and override.yaml, defaults, validation.

``lima.yaml`` keeps what the user's template said; defaults are filled each
time it is loaded, as Lima does, so a later default change reaches old
instances. Layering (Lima's): scalars override.yaml > lima.yaml > default.yaml
> built-in; lists concatenated override, lima.yaml, default (mounts and
networks: default, lima.yaml, override, merged by key); maps merged.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from . import dirnames, filenames, gotemplate, guestfields, mounts, templatevalues, textfile, yamlfile
from ._jsonmodel import JSONModel
from .errors import ConfigError
from .limatype import ARCHES, DEFAULT_DISK, MOUNT_TYPES, LimaYAML, host_arch
from .mounts import expand_location
from .units import format_size, parse_size
from .users import guest_user

log = logging.getLogger("lima_core")

OS_TYPES = ("Linux", "Darwin", "FreeBSD", "Windows")


# -- loading ------------------------------------------------------------------------------


def _fast_load(text: str, source: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError):
        return yamlfile.load(text, source).data  # re-parse for the positioned error
    return yamlfile.check_shape(data, source)


@dataclasses.dataclass(frozen=True)
class _Layer:
    """One of the files a configuration is layered from: where it came from, its text (for positions), its data."""

    source: str
    text: str | None
    data: dict[str, Any]


def _read_layer(path: Path) -> _Layer:
    try:
        text = textfile.read(path)
    except FileNotFoundError:
        return _Layer(str(path), None, {})
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    data = _fast_load(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping")
    return _Layer(str(path), text, data)


def load_file(path: Path, *, warn_unknown: bool = False) -> LimaYAML:
    """*path* layered with default.yaml/override.yaml, defaults filled, validated."""
    try:
        text = textfile.read(path)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return load_text(text, str(path), warn_unknown=warn_unknown)


def load_text(text: str, source: str, *, warn_unknown: bool = False) -> LimaYAML:
    data = _fast_load(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: lima.yaml must be a YAML mapping")
    return from_data(data, source, text=text, warn_unknown=warn_unknown)


def from_data(data: dict[str, Any], source: str, *, text: str | None = None, warn_unknown: bool = False,
              inst_dir: Path | None = None) -> LimaYAML:
    """Build, layer, fill and validate; errors carry ``file:line:col`` of the layer the bad value came from
    (``_config/default.yaml``, *source* or ``_config/override.yaml``; *source* only when *text* is given).

    *inst_dir*: the instance directory, for ``{{.Name}}`` and ``{{.Dir}}`` in templates; Lima's rule when
    it is not given: the directory holding *source*."""
    config_dir = dirnames.config_dir()
    dirnames.check_private()
    default, override = _read_layer(config_dir / filenames.DEFAULT_YAML), _read_layer(config_dir / filenames.OVERRIDE_YAML)
    layers = _Layers(default, _Layer(source, text, data), override)
    layered = merge_layers(default.data, data, override.data)
    try:
        guestfields.check_params_used(data)
        cfg = LimaYAML.from_json(_params_as_text(layered))
        if warn_unknown:
            for path in unknown_fields(cfg):
                log.warning("%s: unknown field %r is ignored", *layers.where(path, layered))
        fill_defaults(cfg, inst_dir if inst_dir is not None else Path(source).absolute().parent)
        validate(cfg)
    except ConfigError as exc:
        raise layers.error(exc, layered) from None
    return cfg


class _Layers:
    """default.yaml, the instance's own configuration and override.yaml, and which one a merged value came from.

    Follows :func:`merge_layers`: a scalar or a map's value comes from the
    highest layer that sets it (override, mine, default); a list is the
    layers' lists one after another in that order; ``mounts`` and
    ``networks`` entries are merged by their key.
    """

    def __init__(self, default: _Layer, mine: _Layer, override: _Layer) -> None:
        self.by_precedence = (override, mine, default)

    def where(self, path: str, layered: dict[str, Any]) -> tuple[str, str]:
        """(``file:line:col`` or the layer's name, *path* as that layer spells it) for a path in the merged data."""
        layer, own = self._origin(path, layered)
        if layer.text is None:
            return layer.source, own
        return yamlfile.load(layer.text, layer.source).where(own), own

    def error(self, exc: ConfigError, layered: dict[str, Any]) -> ConfigError:
        path, sep, rest = exc.message.partition(":")
        if not sep or not path or any(c.isspace() for c in path):  # not about one field
            return ConfigError(f"{self.by_precedence[1].source}: {exc.message}")
        where, own = self.where(path, layered)
        return ConfigError(f"{where}: {own}:{rest}")

    def _origin(self, path: str, layered: dict[str, Any]) -> tuple[_Layer, str]:
        override, mine, default = self.by_precedence
        key, index, rest = _split(path)
        values = [(layer, layer.data.get(key)) for layer in self.by_precedence if layer.data.get(key) is not None]
        if not values:
            return mine, path
        if index is not None and all(isinstance(v, list) for _, v in values):
            if key in ("mounts", "networks"):
                merged = layered.get(key)
                item = merged[index] if isinstance(merged, list) and index < len(merged) else None
                field = "mountPoint" if key == "mounts" else "interface"
                ident = (item.get(field) or item.get("location")) if isinstance(item, dict) else None
                for layer, items in values:
                    for j, entry in enumerate(items):
                        if isinstance(entry, dict) and ident is not None \
                                and (entry.get(field) or entry.get("location")) == ident \
                                and (not rest or _lookup(entry, rest) is not None):
                            return layer, f"{key}[{j}]{rest}"
                return mine, path
            offset = index
            for layer, items in values:
                if offset < len(items):
                    return layer, f"{key}[{offset}]{rest}"
                offset -= len(items)
            return mine, path
        if index is not None:  # a list in one layer, something else in another: the highest layer's value won
            return values[0][0], path
        for layer, value in values:
            if not rest or _lookup(value, rest) is not None:
                return layer, path
        return mine, path  # a default filled in later


def _split(path: str) -> tuple[str, int | None, str]:
    """``images[2].location`` -> ("images", 2, ".location"); ``ssh.localPort`` -> ("ssh", None, ".localPort")."""
    m = re.match(r"([^.\[]+)(?:\[(\d+)\])?(.*)$", path)
    if m is None:
        return path, None, ""
    return m[1], int(m[2]) if m[2] is not None else None, m[3]


def _lookup(value: Any, rest: str) -> Any:
    """The value at *rest* (``.a[0].b``) inside *value*, or None."""
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", rest):
        if name:
            value = value.get(name) if isinstance(value, dict) else None
        else:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
        if value is None:
            return None
    return value


def _params_as_text(data: dict[str, Any]) -> dict[str, Any]:
    """``param:`` values are strings in Lima; a template may write ``true`` or ``3`` (Lima's docker.yaml
    does), which Go's YAML decoding reads as the text "true" or "3"."""
    params = data.get("param")
    if isinstance(params, dict):
        data = dict(data)
        data["param"] = {k: (str(v).lower() if isinstance(v, bool) else str(v))
                         if isinstance(v, (bool, int, float)) else v for k, v in params.items()}
    return data


def merge_layers(default: dict[str, Any], mine: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in list(default) + [k for k in mine if k not in default] + [k for k in override if k not in default and k not in mine]:
        values = [layer[key] for layer in (override, mine, default) if layer.get(key) is not None]
        if not values:
            out[key] = None
            continue
        if all(isinstance(v, list) for v in values):
            if key in ("mounts", "networks"):
                out[key] = _merge_by_key(list(reversed(values)), "mountPoint" if key == "mounts" else "interface")
            else:
                out[key] = [item for v in values for item in v]
        elif all(isinstance(v, dict) for v in values):
            merged: dict[str, Any] = {}
            for v in reversed(values):
                merged = _deep_merge(merged, v)
            out[key] = merged
        else:
            out[key] = values[0]
    return out


def _deep_merge(below: dict[str, Any], above: dict[str, Any]) -> dict[str, Any]:
    out = dict(below)
    for k, v in above.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _merge_by_key(layers: list[list[Any]], field: str) -> list[Any]:
    """Layers in increasing precedence; a later entry with the same key replaces (merges into) an earlier one."""
    out: list[Any] = []
    index: dict[Any, int] = {}
    for layer in layers:
        for item in layer:
            key = item.get(field) or item.get("location") if isinstance(item, dict) else None
            if not isinstance(key, (str, int, float, bool)):
                key = None  # a wrongly typed entry is merged as is; validation reports it
            if key is not None and key in index:
                out[index[key]] = _deep_merge(out[index[key]], item)
            else:
                if key is not None:
                    index[key] = len(out)
                out.append(item)
    return out


def unknown_fields(cfg: LimaYAML) -> list[str]:
    """Paths of keys no model knows."""
    found: list[str] = []

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, JSONModel):
            for k in obj.extra:
                if k not in ("variant", "archVariant"):
                    found.append(f"{path}.{k}" if path else str(k))  # a key may be a number (`1: x`)
            for f in obj.__dataclass_fields__:
                if f != "extra":
                    walk(getattr(obj, f), f"{path}.{_key(obj, f)}" if path else _key(obj, f))
        elif isinstance(obj, list):
            for i, item in enumerate(obj):
                walk(item, f"{path}[{i}]")

    walk(cfg, "")
    return found


def _key(obj: JSONModel, attr: str) -> str:
    return obj.__dataclass_fields__[attr].metadata.get("key", attr)


# -- defaults -------------------------------------------------------------------------------


def default_vm_type(arch: str | None = None) -> str:
    """vz on macOS, qemu elsewhere; qemu for a non-native arch (Lima's DefaultDriver)."""
    if arch and arch != host_arch():
        return "qemu"
    return "vz" if sys.platform == "darwin" else "qemu"


def _host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def fill_defaults(cfg: LimaYAML, inst_dir: Path | None = None) -> LimaYAML:
    """Lima's FillDefault for the fields lima-core models. Idempotent.

    *inst_dir*: the instance directory (``{{.Name}}``, ``{{.Dir}}`` in the mounts' templates)."""
    from .limatype import SSH, Firmware, Video

    cfg.vm_type = cfg.vm_type or default_vm_type(cfg.arch)
    cfg.os = cfg.os or "Linux"
    cfg.arch = cfg.arch or host_arch()
    for image in cfg.images or []:
        image.arch = image.arch or cfg.arch
        if image.kernel is not None:
            image.kernel.arch = image.kernel.arch or image.arch
        if image.initrd is not None:
            image.initrd.arch = image.initrd.arch or image.arch
    if not cfg.cpus:
        cfg.cpus = min(4, os.cpu_count() or 1)
    if not cfg.memory:
        cfg.memory = format_size(min(4 << 30, _host_memory() // 2 // (1 << 20) * (1 << 20)))
    cfg.disk = cfg.disk or DEFAULT_DISK
    cfg.ssh = cfg.ssh or SSH()
    if cfg.ssh.local_port is None:
        cfg.ssh.local_port = 0
    for attr in ("load_dot_ssh_pub_keys", "forward_agent", "forward_x11", "forward_x11_trusted"):
        if getattr(cfg.ssh, attr) is None:
            setattr(cfg.ssh, attr, False)
    cfg.firmware = cfg.firmware or Firmware()
    if cfg.firmware.legacy_bios is None:
        cfg.firmware.legacy_bios = False
    cfg.video = cfg.video or Video()
    cfg.video.display = cfg.video.display or "none"
    if cfg.plain is None:
        cfg.plain = False
    user = guest_user(cfg)
    from .limatype import User

    cfg.user = User(name=user.name, comment=user.comment, home=user.home, shell=user.shell, uid=user.uid,
                    passwordless_sudo=cfg.user.passwordless_sudo if cfg.user else None,
                    extra=cfg.user.extra if cfg.user else {})
    _fill_mounts(cfg, inst_dir or Path("."), user)
    guestfields.fill_defaults(cfg)
    return cfg


def _fill_mounts(cfg: LimaYAML, inst_dir: Path, user: Any) -> None:
    """Lima's: ``location`` is a host template (then ``~`` expanded and cleaned), ``mountPoint`` a guest
    template, defaulting to the location; ``writable`` defaults to false."""
    if cfg.mounts is None:
        cfg.mounts = []
    host_values = guest_values = None
    for i, m in enumerate(cfg.mounts):
        if m.location and "{{" in m.location:
            host_values = host_values or templatevalues.host(inst_dir, cfg.param)
            m.location = gotemplate.expand(m.location, host_values, f"mounts[{i}].location")
        m.location = expand_location(m.location) if m.location else m.location
        if m.mount_point and "{{" in m.mount_point:
            guest_values = guest_values or templatevalues.guest(inst_dir.name, user, cfg.param)
            m.mount_point = gotemplate.expand(m.mount_point, guest_values, f"mounts[{i}].mountPoint")
        m.mount_point = m.mount_point or m.location
        if m.writable is None:
            m.writable = False


# -- validation -----------------------------------------------------------------------------

#: guest directories a mount must not hide: Lima's list (``/home``, ``/opt``, ``/tmp`` among them), and the
#: ones the guest cannot run without
_SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/run", "/sbin",
                "/sys", "/tmp", "/usr", "/var")


def validate(cfg: LimaYAML) -> None:
    """Lima's Validate for the fields lima-core models; ConfigError names the field."""
    if cfg.base:
        raise ConfigError("base: must be empty once the template is embedded")
    if cfg.os not in OS_TYPES:
        raise ConfigError(f"os: {cfg.os!r} is not supported; use one of {', '.join(OS_TYPES)}")
    if cfg.arch not in ARCHES:
        raise ConfigError(f"arch: {cfg.arch!r} is not supported; use one of {', '.join(ARCHES)}")
    if not cfg.images:
        raise ConfigError("images: at least one image is needed (lima fetches it into the instance directory "
                          "for the driver's create_disk); for a driver that boots no disk image, name any local "
                          "file (a relative location is resolved against the template's directory), or start "
                          "the template with `base: template:empty`")
    for i, image in enumerate(cfg.images):
        if not image.location:
            raise ConfigError(f"images[{i}].location: must not be empty")
        if image.arch not in ARCHES:
            raise ConfigError(f"images[{i}].arch: {image.arch!r} is not supported")
        for sub in ("kernel", "initrd"):
            part = getattr(image, sub)
            if part is not None:
                if not part.location:
                    raise ConfigError(f"images[{i}].{sub}.location: must not be empty")
                if part.arch != image.arch:
                    raise ConfigError(f"images[{i}].{sub}.arch: must be the image's arch ({image.arch})")
    if cfg.cpus is not None and cfg.cpus < 1:
        raise ConfigError(f"cpus: must be at least 1, got {cfg.cpus}")
    if parse_size(cfg.memory or "0", "memory") < 1 << 20:
        raise ConfigError(f"memory: {cfg.memory!r} is too small; give at least a few hundred MiB")
    if parse_size(cfg.disk or "0", "disk") < 1 << 20:
        raise ConfigError(f"disk: {cfg.disk!r} is too small")
    port = cfg.ssh.local_port if cfg.ssh else 0
    if port is not None and (port < 0 or port > 65535 or port == 22):
        raise ConfigError(f"ssh.localPort: {port} is not a usable port (0 picks a free one; 22 is not allowed)")
    if cfg.mount_type not in (None, "", "default") + MOUNT_TYPES:
        raise ConfigError(f"mountType: {cfg.mount_type!r} is not supported; use one of {', '.join(MOUNT_TYPES)}")
    if cfg.mount_type and cfg.mount_type in (cfg.mount_types_unsupported or []):
        raise ConfigError(f"mountType: {cfg.mount_type!r} is listed in mountTypesUnsupported")
    home = cfg.user.home if cfg.user else None
    for i, m in enumerate(cfg.mounts or []):
        if not m.location or not os.path.isabs(m.location):
            raise ConfigError(f"mounts[{i}].location: {m.location!r} must be an absolute path (or start with ~)")
        if os.path.exists(m.location) and not os.path.isdir(m.location):
            raise ConfigError(f"mounts[{i}].location: {m.location!r} is not a directory; a mount shares a "
                              "directory")
        point = m.mount_point or ""
        if not point.startswith("/"):
            raise ConfigError(f"mounts[{i}].mountPoint: {point!r} must be an absolute path in the guest "
                              "(a template such as {{.Home}}/share is expanded first)")
        if os.path.normpath(point) in _SYSTEM_DIRS or os.path.normpath(point) == home:
            raise ConfigError(f"mounts[{i}].mountPoint: {point!r} is a system directory or the guest home")
        mounts.sshfs_options(m, i)
        mounts.virtiofs_queue_size(m, i)
    if cfg.video is not None and cfg.video.display is not None and not isinstance(cfg.video.display, str):
        raise ConfigError("video.display: expected a string")
    _validate_user(cfg)
    guestfields.validate(cfg)


def _validate_user(cfg: LimaYAML) -> None:
    """user: goes into ssh.config (read by ssh on the host), cidata and the guest's passwd: no injection."""
    from .users import valid_name

    u = cfg.user
    if u is None:
        return
    if u.name and not valid_name(u.name):
        raise ConfigError(f"user.name: {u.name!r} is not a valid user name; use lowercase letters, digits, "
                          "'_' and '-', starting with a letter or '_' (at most 32)")
    for field, value in (("home", u.home), ("shell", u.shell)):
        if value and (not value.startswith("/") or _has_control(value)):
            raise ConfigError(f"user.{field}: {value!r} must be an absolute path in the guest")
    if u.comment and _has_control(u.comment):
        raise ConfigError(f"user.comment: {u.comment!r} must be one line of text")
    if u.uid is not None and not 0 < u.uid < 2**31:
        raise ConfigError(f"user.uid: {u.uid} is not a usable uid")


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)
