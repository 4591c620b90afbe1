"""lima.yaml, the qemu driver's way: defaults (reference §4.1) and the checks of §4.2.

:func:`fill_defaults` is what ``configure`` writes into the instance's config;
:func:`check` is what cannot work, whatever the host (``configure`` and
``validate`` both run it). Both are plain functions of the config.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from lima_core import filenames
from lima_core.errors import ConfigError
from lima_core.limatype import ARCHES, MOUNT_TYPES, VNC, LimaYAML, Video, host_arch
from lima_core.units import parse_size

log = logging.getLogger(__name__)

NAME = "qemu"
DEFAULT_VNC_DISPLAY = "127.0.0.1:0,to=9"
DEFAULT_VIRTIOFS_QUEUE_SIZE = 1024
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


def parse_semver(text: str) -> tuple[int, int, int]:
    """A Lima-style semver ("8.2.1", "v9.0.0"); ValueError otherwise."""
    match = _SEMVER.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a semantic version (X.Y.Z)")
    return int(match[1]), int(match[2]), int(match[3])


def host_mount_types(platform: str | None = None) -> tuple[str, ...]:
    """Mount types Lima's qemu allows on a host (§4.2)."""
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return ("reverse-sshfs", "9p", "virtiofs")
    if platform == "win32":
        return ("reverse-sshfs",)
    return ("reverse-sshfs", "9p")


def existing_lima_version(instance_dir: Path) -> str | None:
    """The instance's ``lima-version`` when the directory is an existing instance, else None."""
    if not any((instance_dir / marker).exists() for marker in filenames.INSTANCE_MARKERS):
        return None
    try:
        # A version that does not decode cannot be parsed either: it counts as new, as in Lima.
        return (instance_dir / filenames.LIMA_VERSION).read_bytes().decode(errors="replace").strip()
    except OSError:
        return ""


def created_before_1_0(version: str | None) -> bool:
    """Lima's ``!GreaterEqual(version, "1.0.0")``: "" is old, an unparsable version is new."""
    if version is None:
        return False
    if version == "":
        return True
    try:
        return parse_semver(version.split("-", 1)[0]) < (1, 0, 0)
    except ValueError:
        return False


def fill_defaults(config: LimaYAML, instance_dir: Path, platform: str | None = None) -> None:
    """Lima's qemu defaults, in place. Fields already set are kept."""
    if config.vm_type is None:
        config.vm_type = NAME
    if config.video is None:
        config.video = Video()
    if config.video.vnc is None:
        config.video.vnc = VNC()
    if not config.video.vnc.display:
        config.video.vnc.display = DEFAULT_VNC_DISPLAY
    _migrate_cpu_type(config)
    unsupported = set(config.mount_types_unsupported or [])
    if (platform or sys.platform) == "win32":
        unsupported.add("9p")  # QEMU for Windows has no 9p
    if config.mount_type in (None, "", "default"):
        config.mount_type = "9p"
        if "9p" in unsupported:
            config.mount_type = "reverse-sshfs"
        elif created_before_1_0(existing_lima_version(instance_dir)):
            config.mount_type = "reverse-sshfs"
    if config.mount_type == "virtiofs":
        for mount in config.mounts or []:
            if mount.virtiofs is None:
                mount.virtiofs = {}
            mount.virtiofs.setdefault("queueSize", DEFAULT_VIRTIOFS_QUEUE_SIZE)
    if config.mount_type in unsupported:
        raise ConfigError(f"mount type {config.mount_type!r} is listed in `mountTypesUnsupported`")


def _migrate_cpu_type(config: LimaYAML) -> None:
    """The deprecated top-level ``cpuType`` moves into ``vmOpts.qemu.cpuType``; vmOpts wins conflicts."""
    if not config.cpu_type:
        config.cpu_type = None
        return
    opts = config.vm_opts_for(NAME)
    merged = dict(opts.get("cpuType") or {})
    for arch, model in config.cpu_type.items():
        if not model:
            continue
        if merged.get(arch) and merged[arch] != model:
            log.warning("`cpuType.%s` (%s) conflicts with `vmOpts.qemu.cpuType.%s` (%s); using the latter",
                        arch, model, arch, merged[arch])
            continue
        merged[arch] = model
    opts["cpuType"] = merged
    config.cpu_type = None


def qemu_opts(config: LimaYAML) -> dict:
    opts = (config.vm_opts or {}).get(NAME)
    return opts if isinstance(opts, dict) else {}


def cpu_type(config: LimaYAML, arch: str, accel: str, platform: str | None = None) -> str:
    """Item 2: ``vmOpts.qemu.cpuType[arch]``, else Lima's default for the arch and accelerator.

    The default is ``max`` (``qemu64`` for x86_64 on Windows hosts); the native arch
    gets ``host`` when a hypervisor runs it and the host has that model (Linux, macOS).
    """
    platform = platform or sys.platform
    model = (qemu_opts(config).get("cpuType") or {}).get(arch)
    if model:
        return str(model)
    model = "qemu64" if arch == "x86_64" and platform == "win32" else "max"
    if arch == host_arch() and accel != "tcg" and (platform.startswith("linux") or platform == "darwin"):
        model = "host"
    if arch == "x86_64" and platform == "darwin":
        model += ",-avx512vl,-pdpe1gb"
    return model


def check(config: LimaYAML, platform: str | None = None) -> None:
    """:raises ConfigError: a value this driver cannot run on any host like this one."""
    arch = config.arch or host_arch()
    if arch not in ARCHES:
        raise ConfigError(f"arch {arch!r} is not supported; use one of {', '.join(ARCHES)}")
    minimum = qemu_opts(config).get("minimumVersion")
    if minimum is not None:
        try:
            parse_semver(str(minimum))
        except ValueError:
            raise ConfigError(f"vmOpts.qemu.minimumVersion {minimum!r} is not a semantic version (X.Y.Z)") from None
    cpu_types = qemu_opts(config).get("cpuType") or {}
    if not isinstance(cpu_types, dict):
        raise ConfigError("vmOpts.qemu.cpuType must map an arch to a CPU model")
    mount_type = config.mount_type or "9p"
    if mount_type not in MOUNT_TYPES:
        raise ConfigError(f"mountType {mount_type!r} is not one of {', '.join(MOUNT_TYPES)}")
    if mount_type not in host_mount_types(platform):
        raise ConfigError(f"field `mountType` must be one of {', '.join(host_mount_types(platform))} for the "
                          f"qemu driver on this host, got {mount_type!r}")
    for what in ("memory", "disk"):
        value = getattr(config, what)
        if value is not None:
            parse_size(value, what)
    audio = config.audio
    if audio and audio.interface not in (None, "", "hda", "virtio"):
        raise ConfigError(f"audio.interface {audio.interface!r} is not one of hda, virtio")


def unsupported_features(config: LimaYAML) -> list[str]:
    """What lima.yaml asks for that Lima's qemu does but lima-driver-qemu does not (yet)."""
    out = []
    if config.tpm and (config.tpm is True or (isinstance(config.tpm, dict) and config.tpm.get("enabled"))):
        out.append("tpm")
    for i, nw in enumerate(config.networks or []):
        if nw.lima or nw.socket:
            out.append(f"networks[{i}] ({'lima: ' + nw.lima if nw.lima else 'socket: ' + str(nw.socket)})")
    if (config.os or "Linux") == "Windows":
        out.append("os: Windows")
    if os.name == "nt":
        out.append("Windows hosts")
    return out
