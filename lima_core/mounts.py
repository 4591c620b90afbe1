"""Host directories shared with the guest (``mounts:`` in lima.yaml), resolved.

Drivers need the host path, the guest mount point and the tag the device
carries; cidata needs the guest-side mount options. Both come from here, so
the two sides always agree on the tag: ``lima-`` + the first 16 hex digits of
sha256("<location>:<mountPoint>"), as Lima computes it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .limatype import LimaYAML, Mount
from .units import parse_size

DEFAULT_9P_SECURITY_MODEL = "none"
DEFAULT_9P_PROTOCOL_VERSION = "9p2000.L"
DEFAULT_9P_MSIZE = "128KiB"


@dataclasses.dataclass(frozen=True)
class ResolvedMount:
    index: int
    #: absolute host path (``~`` expanded)
    location: str
    #: absolute guest path
    mount_point: str
    writable: bool
    tag: str
    #: 9p, virtiofs, reverse-sshfs, wsl2
    mount_type: str
    #: 9p: security model for ``-virtfs``
    security_model: str = DEFAULT_9P_SECURITY_MODEL
    #: guest ``mount -o`` options (without ``ro``)
    options: str = ""


def mount_tag(location: str, mount_point: str) -> str:
    import hashlib  # here: only this call needs it, a driver process starts faster

    return "lima-" + hashlib.sha256(f"{location}:{mount_point}".encode()).hexdigest()[:16]


def expand_location(location: str, home: str | None = None) -> str:
    """``~`` and ``{{.Home}}`` expanded and normalised; a relative path stays relative (and is invalid)."""
    home = home or str(Path.home())
    text = location.replace("{{.Home}}", home)
    if text == "~" or text.startswith("~/"):
        text = home + text[1:]
    return os.path.normpath(text) if os.path.isabs(text) else text


def resolve(config: LimaYAML) -> list[ResolvedMount]:
    """The config's mounts with every default filled in, in order."""
    mount_type = config.mount_type or "9p"
    out = []
    for i, m in enumerate(config.mounts or []):
        location = expand_location(m.location)
        mount_point = m.mount_point or location
        writable = bool(m.writable)
        ninep = m.ninep
        security_model = (ninep.security_model if ninep else None) or DEFAULT_9P_SECURITY_MODEL
        out.append(ResolvedMount(i, location, mount_point, writable, mount_tag(location, mount_point),
                                 mount_type, security_model, _options(m, mount_type, writable)))
    return out


def _options(m: Mount, mount_type: str, writable: bool) -> str:
    if mount_type == "9p":
        ninep = m.ninep
        version = (ninep.protocol_version if ninep else None) or DEFAULT_9P_PROTOCOL_VERSION
        msize = parse_size((ninep.msize if ninep else None) or DEFAULT_9P_MSIZE, "9p.msize")
        cache = (ninep.cache if ninep else None) or ("mmap" if writable else "fscache")
        return f"trans=virtio,version={version},msize={msize},cache={cache}"
    if mount_type == "virtiofs":
        return ""
    return ""
