"""``configure`` for vz: the defaults it fills into lima.yaml, and ``vmOpts.vz`` read as a value.

What is filled, as Lima's vz driver does:

- ``vmType: vz`` and ``mountType: virtiofs`` when unset;
- ``ssh.overVsock``: true for Linux guests when unset;
- ``vmOpts.vz.rosetta``: migrated from the deprecated top-level ``rosetta``
  when ``vmOpts.vz.rosetta`` is unset; ``enabled`` and ``binfmt`` default to
  false;
- ``vmOpts.vz.diskImageFormat``: ``asif`` for a macOS guest on macOS 26 or
  later, otherwise ``raw``.

``vmOpts.vz`` is written back so the defaults reach the host.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from lima_core.errors import ConfigError
from lima_core.limatype import SSH, LimaYAML

from .hostinfo import ASIF_MACOS, HostFacts

log = logging.getLogger("lima_driver_vz")

NAME = "vz"
DEFAULT_MOUNT_TYPE = "virtiofs"
DISK_FORMATS = ("raw", "asif")


@dataclasses.dataclass(frozen=True)
class VZOptions:
    """``vmOpts.vz`` after defaults."""

    rosetta_enabled: bool = False
    rosetta_binfmt: bool = False
    disk_image_format: str = "raw"

    def to_json(self) -> dict[str, Any]:
        return {"rosetta": {"enabled": self.rosetta_enabled, "binfmt": self.rosetta_binfmt},
                "diskImageFormat": self.disk_image_format}


def _rosetta(value: Any, where: str) -> dict[str, bool | None]:
    if value is None:
        return {"enabled": None, "binfmt": None}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping with `enabled` and `binfmt`")
    out: dict[str, bool | None] = {}
    for key in ("enabled", "binfmt"):
        item = value.get(key)
        if item is not None and not isinstance(item, bool):
            raise ConfigError(f"{where}.{key}: expected true or false, got {item!r}")
        out[key] = item
    return out


def read(cfg: LimaYAML) -> VZOptions:
    """``vmOpts.vz`` as it stands (after :func:`fill_defaults` it is complete)."""
    raw = (cfg.vm_opts or {}).get(NAME) or {}
    if not isinstance(raw, dict):
        raise ConfigError("vmOpts.vz: expected a mapping")
    rosetta = _rosetta(raw.get("rosetta"), "vmOpts.vz.rosetta")
    fmt = raw.get("diskImageFormat")
    if fmt is not None and not isinstance(fmt, str):
        raise ConfigError(f"vmOpts.vz.diskImageFormat: expected a string, got {fmt!r}")
    return VZOptions(rosetta_enabled=bool(rosetta["enabled"]), rosetta_binfmt=bool(rosetta["binfmt"]),
                     disk_image_format=fmt or "raw")


def fill_defaults(cfg: LimaYAML, facts: HostFacts) -> VZOptions:
    """Fill vz's defaults into *cfg* in place; return the resulting options."""
    if cfg.vm_type is None:
        cfg.vm_type = NAME
    if cfg.mount_type is None:
        cfg.mount_type = DEFAULT_MOUNT_TYPE
    if cfg.ssh is None:
        cfg.ssh = SSH()
    if cfg.ssh.over_vsock is None:
        cfg.ssh.over_vsock = (cfg.os or "Linux") == "Linux"

    opts = cfg.vm_opts_for(NAME)
    rosetta = _rosetta(opts.get("rosetta"), "vmOpts.vz.rosetta")
    legacy = _rosetta(cfg.rosetta, "rosetta")
    legacy_set = any(v is not None for v in legacy.values())
    if legacy_set and all(v is None for v in rosetta.values()):
        log.debug("migrating the top-level `rosetta` to vmOpts.vz.rosetta")
        rosetta = legacy
    elif legacy_set and all(v is not None for v in rosetta.values()):
        log.warning("both the top-level `rosetta` and `vmOpts.vz.rosetta` are set; using vmOpts.vz.rosetta "
                    "(the top-level `rosetta` is deprecated)")
    fmt = opts.get("diskImageFormat")
    if fmt is not None and not isinstance(fmt, str):
        raise ConfigError(f"vmOpts.vz.diskImageFormat: expected a string, got {fmt!r}")
    if not fmt:
        fmt = "asif" if (cfg.os == "Darwin" and facts.macos_at_least(ASIF_MACOS)) else "raw"
    result = VZOptions(rosetta_enabled=bool(rosetta["enabled"]), rosetta_binfmt=bool(rosetta["binfmt"]),
                       disk_image_format=fmt)
    opts.update(result.to_json())
    if cfg.mount_type in (cfg.mount_types_unsupported or []):
        log.warning("mount type %r is listed in mountTypesUnsupported; validate will refuse it", cfg.mount_type)
    return result
