"""Host directories shared with the guest (``mounts:`` in lima.yaml), resolved.

Drivers need the host path, the guest mount point and the tag the device
carries; cidata needs the guest-side mount options; the host agent needs the
sshfs options of a reverse-sshfs mount. All come from here, so the sides
always agree on the tag: ``lima-`` + the first 16 hex digits of
sha256("<location>:<mountPoint>"), as Lima computes it.

Who mounts what (Lima's split): 9p and virtiofs are rows of cloud-init's
``mounts:`` (so fstab, and they come back after a guest reboot) over devices
the driver adds; reverse-sshfs is mounted by the host agent over SSH at each
start (:mod:`lima_core.hostagent.sshfs`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .errors import ConfigError
from .limatype import LimaYAML, Mount
from .units import parse_size

DEFAULT_9P_SECURITY_MODEL = "none"
DEFAULT_9P_PROTOCOL_VERSION = "9p2000.L"
DEFAULT_9P_MSIZE = "128KiB"
DEFAULT_VIRTIOFS_QUEUE_SIZE = 1024
#: ``mounts[].sshfs.sftpDriver`` values: "" picks OpenSSH's sftp-server (Lima falls back to its builtin
#: server when none is found; lima-core has no builtin server)
SFTP_DRIVERS = ("", "builtin", "openssh-sftp-server")


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
    #: reverse-sshfs: ``sshfs.cache`` (false: ``-o cache=no``) and ``sshfs.followSymlinks``
    sshfs_cache: bool = True
    sshfs_follow_symlinks: bool = False
    #: reverse-sshfs: ``sshfs.sftpDriver``
    sftp_driver: str = ""
    #: virtiofs: the vhost-user-fs device's queue size
    virtiofs_queue_size: int = DEFAULT_VIRTIOFS_QUEUE_SIZE


def mount_tag(location: str, mount_point: str) -> str:
    import hashlib  # here: only this call needs it, a driver process starts faster

    return "lima-" + hashlib.sha256(f"{location}:{mount_point}".encode()).hexdigest()[:16]


def expand_location(location: str, home: str | None = None) -> str:
    """``~`` expanded and the path normalised; a relative path stays relative (and is invalid).
    Templates (``{{.Home}}``) are expanded before, by :func:`lima_core.limayaml.fill_defaults`."""
    home = home or str(Path.home())
    text = location
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
        sshfs = sshfs_options(m, i)
        out.append(ResolvedMount(i, location, mount_point, writable, mount_tag(location, mount_point),
                                 mount_type, security_model, _options(m, mount_type, writable),
                                 sshfs_cache=sshfs[0], sshfs_follow_symlinks=sshfs[1], sftp_driver=sshfs[2],
                                 virtiofs_queue_size=virtiofs_queue_size(m, i)))
    return out


def sshfs_options(m: Mount, index: int) -> tuple[bool, bool, str]:
    """``sshfs``: (cache, followSymlinks, sftpDriver), Lima's defaults filled. :raises ConfigError: a bad value."""
    given = m.sshfs or {}
    if not isinstance(given, dict):
        raise ConfigError(f"mounts[{index}].sshfs: expected a mapping (cache, followSymlinks, sftpDriver)")
    unknown = sorted(set(given) - {"cache", "followSymlinks", "sftpDriver"})
    if unknown:
        raise ConfigError(f"mounts[{index}].sshfs.{unknown[0]}: unknown field; the fields are cache, "
                          "followSymlinks, sftpDriver")
    out: list[bool] = []
    for key, default in (("cache", True), ("followSymlinks", False)):
        value = given.get(key)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"mounts[{index}].sshfs.{key}: expected true or false, got {value!r}")
        out.append(default if value is None else value)
    driver = given.get("sftpDriver") or ""
    if driver not in SFTP_DRIVERS:
        raise ConfigError(f"mounts[{index}].sshfs.sftpDriver: {driver!r} is not one of "
                          f"{', '.join(repr(d) for d in SFTP_DRIVERS)}")
    return out[0], out[1], driver


def virtiofs_queue_size(m: Mount, index: int) -> int:
    """``virtiofs.queueSize`` (Lima's default 1024). :raises ConfigError: a bad value."""
    given = m.virtiofs or {}
    if not isinstance(given, dict):
        raise ConfigError(f"mounts[{index}].virtiofs: expected a mapping (queueSize)")
    unknown = sorted(set(given) - {"queueSize"})
    if unknown:
        raise ConfigError(f"mounts[{index}].virtiofs.{unknown[0]}: unknown field; the field is queueSize")
    size = given.get("queueSize")
    if size is None:
        return DEFAULT_VIRTIOFS_QUEUE_SIZE
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size > 1024 or size & (size - 1):
        raise ConfigError(f"mounts[{index}].virtiofs.queueSize: {size!r} must be a power of two from 1 to 1024")
    return size


def _options(m: Mount, mount_type: str, writable: bool) -> str:
    if mount_type == "9p":
        ninep = m.ninep
        version = (ninep.protocol_version if ninep else None) or DEFAULT_9P_PROTOCOL_VERSION
        msize = parse_size((ninep.msize if ninep else None) or DEFAULT_9P_MSIZE, "9p.msize")
        cache = (ninep.cache if ninep else None) or ("mmap" if writable else "fscache")
        return f"trans=virtio,version={version},msize={msize},cache={cache}"
    return ""
