"""``validate`` for vz: refuse what Virtualization.framework cannot run, warn about what it ignores.

The host is checked first (macOS 13 or later), then the configuration, in the
order Lima's vz driver checks it. Errors are one sentence each; warnings go to
the ``lima_driver_vz`` logger.
"""

from __future__ import annotations

import logging

from lima_core.errors import ValidationError
from lima_core.limatype import LimaYAML
from lima_core.units import format_size

from . import datadisks, hostinfo, options
from .hostinfo import ASIF_MACOS, INTEL_LINUX_612_MACOS, HostFacts

log = logging.getLogger("lima_driver_vz")

#: lima.yaml keys vz reads; other set keys are reported as ignored.
KNOWN_KEYS = frozenset({
    "additionalDisks", "arch", "audio", "caCerts", "containerd", "copyToHost", "cpus", "cpuType", "disk", "dns",
    "env", "firmware", "guestInstallPrefix", "hostResolver", "images", "memory", "message", "minimumLimaVersion",
    "mounts", "mountType", "mountTypesUnsupported", "mountInotify", "nestedVirtualization", "networks", "os",
    "param", "plain", "portForwards", "probes", "propagateProxyEnv", "provision", "rosetta", "ssh", "timezone",
    "upgradePackages", "user", "video", "vmType", "vmOpts", "base",
})
MIB = 1 << 20
AUDIO_DEVICES = ("", "vz", "default", "none")
DISPLAYS = ("vz", "default", "none")


def validate(cfg: LimaYAML, facts: HostFacts) -> None:
    """Raise HostUnsupported or ValidationError; log warnings for ignored settings."""
    hostinfo.check(facts)
    vm_type = cfg.vm_type or options.NAME
    if facts.arch == "x86_64" and not facts.macos_at_least(INTEL_LINUX_612_MACOS):
        log.warning("vmType %s: on an Intel Mac, macOS 15.5 or later is needed to boot Linux 6.12 or later; "
                    "update macOS, or use vmType qemu if the VM does not start (lima-vm/lima#3334)", vm_type)
    if cfg.mount_type == "9p":
        raise ValidationError(f'field `mountType` must be "reverse-sshfs" or "virtiofs" for the VZ driver, '
                              f'got "{cfg.mount_type}"')
    if cfg.mount_type and cfg.mount_type in (cfg.mount_types_unsupported or []):
        raise ValidationError(f"mount type {cfg.mount_type!r} is listed in `mountTypesUnsupported`; "
                              "choose another `mountType`")
    if cfg.tpm:
        raise ValidationError("field `tpm` is not supported by the VZ driver; use vmType qemu for a TPM")
    if cfg.os == "Windows":
        raise ValidationError("the VZ driver cannot run Windows guests (`os: Windows`); use vmType qemu")
    if cfg.os == "Darwin":
        raise ValidationError("lima-driver-vz does not install or run macOS guests (`os: Darwin`) yet; "
                              "use Lima's own limactl for macOS guests")
    firmware = cfg.firmware
    if firmware is not None and firmware.legacy_bios:
        log.warning("vmType %s: ignoring `firmware.legacyBIOS`", vm_type)
    arch = cfg.arch or facts.arch
    for image in (firmware.images if firmware is not None and firmware.images else []):
        if image.extra.get("vmType", "") in ("", options.NAME) and (image.arch or arch) == arch:
            raise ValidationError("`firmware.images` configuration is not supported for the VZ driver")
    ignored = sorted(k for k, v in cfg.to_json().items() if k not in KNOWN_KEYS and v not in (None, [], {}, ""))
    if ignored:
        log.warning("vmType %s: ignoring %s", vm_type, ", ".join(ignored))
    if arch != facts.arch:
        raise ValidationError(f'unsupported arch: "{arch}" (vz runs only this host\'s arch, {facts.arch}; '
                              "use vmType qemu to emulate another)")
    for i, network in enumerate(cfg.networks or []):
        if network.lima or network.socket:
            kind = "lima" if network.lima else "socket"
            raise ValidationError(f"networks[{i}]: `{kind}:` networks are not supported by lima-driver-vz; "
                                  "use `vzNAT: true`")
    for i, mount in enumerate(cfg.mounts or []):
        if mount.virtiofs and mount.virtiofs.get("queueSize") is not None:
            log.warning("vmType %s: ignoring mounts[%d].virtiofs.queueSize", vm_type, i)
    audio = (cfg.audio.device if cfg.audio else None) or ""
    if audio not in AUDIO_DEVICES:
        log.warning('field `audio.device` must be "vz", "default", or "none" for the VZ driver, got %r', audio)
    display = display_of(cfg)
    if display not in DISPLAYS:
        log.warning('field `video.display` must be "vz", "default", or "none" for the VZ driver, got %r', display)
    memory = cfg.memory_bytes
    if memory % MIB:
        raise ValidationError(f"memory: {cfg.memory} is not a whole number of MiB, which Virtualization.framework "
                              f"requires; use e.g. {format_size(memory // MIB * MIB)}")
    disks = datadisks.names(cfg.additional_disks)
    repeated = sorted({name for name in disks if disks.count(name) > 1})
    if repeated:
        raise ValidationError(f"additionalDisks: {', '.join(map(repr, repeated))} is listed more than once; "
                              "Virtualization.framework attaches a disk image to one device only")
    opts = options.read(cfg)
    if opts.rosetta_enabled and facts.arch != "aarch64":
        log.warning("vmType %s: ignoring vmOpts.vz.rosetta: Rosetta for Linux needs a Mac with Apple silicon", vm_type)
    fmt = opts.disk_image_format
    if fmt not in options.DISK_FORMATS:
        raise ValidationError(f'vmOpts.vz.diskImageFormat must be "raw" or "asif", got "{fmt}"')
    if fmt == "asif" and not facts.macos_at_least(ASIF_MACOS):
        raise ValidationError(f'vmOpts.vz.diskImageFormat "asif" needs macOS {ASIF_MACOS[0]} or later; '
                              f"this host runs {facts.describe()}")


def display_of(cfg: LimaYAML) -> str:
    """``video.display``, "none" when unset (Lima's default)."""
    return (cfg.video.display if cfg.video else None) or "none"
