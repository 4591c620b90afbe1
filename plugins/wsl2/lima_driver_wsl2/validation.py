"""The host check and ``validate`` for wsl2.

Host: WSL 2 runs on Windows 10 build 19041 or later (and Windows 11); a
``wsl.exe`` chosen with ``$LIMA_WSL_EXE`` is taken as the host's WSL whatever
the OS (that is how the fake wsl.exe runs the driver on Linux).

Configuration, as Lima's wsl2 driver: ``mountType`` must be wsl2; no Windows
guests, no TPM, the host's own arch only; the image for that arch must be a
root filesystem tarball, with a specific message for disk images, ISOs,
IPSWs and SquashFS.
"""

from __future__ import annotations

import logging
import platform
import re
import sys
from urllib.parse import urlsplit

from lima_core.errors import DriverError, HostUnsupported, ValidationError
from lima_core.limatype import LimaYAML, host_arch

from . import wsl

log = logging.getLogger("lima_driver_wsl2")

NAME = "wsl2"
MOUNT_TYPE = "wsl2"
MIN_WINDOWS_BUILD = 19041
KNOWN_KEYS = frozenset({"arch", "containerd", "copyToHost", "cpuType", "disk", "dns", "env", "hostResolver", "images",
                        "message", "mounts", "mountType", "param", "plain", "portForwards", "probes",
                        "propagateProxyEnv", "provision", "ssh", "vmType", "user", "base", "minimumLimaVersion",
                        "cpus", "memory", "os", "vmOpts",
                        # lima-core's own: it says itself when a guest without cloud-init cannot apply them
                        "caCerts", "guestInstallPrefix", "mountInotify", "timezone", "upgradePackages"})
COMPRESSIONS = (".gz", ".xz", ".bz2", ".zst", ".zstd")
TARBALL = re.compile(r"\.(tar(\.(gz|xz|bz2|zst|zstd))?|tgz|txz|tbz2|tzst)$", re.IGNORECASE)
#: extension -> why it is not a root filesystem tarball
NOT_A_ROOTFS = {
    ".qcow2": "it is a QCOW2 disk image (a VM disk for qemu)",
    ".raw": "it is a raw disk image (a VM disk)",
    ".img": "it is a disk image (a VM disk)",
    ".iso": "it is an ISO 9660 installer image",
    ".ipsw": "it is a macOS restore image (for vz)",
    ".squashfs": "it is a SquashFS image; WSL imports tar archives only",
}


def check_host() -> None:
    """HostUnsupported unless WSL 2 can run here."""
    if wsl.configured():
        wsl.executable()  # a named wsl.exe that does not exist is a DriverError saying so
        return
    if sys.platform != "win32":
        system = {"darwin": "macOS", "linux": "Linux"}.get(sys.platform, platform.system() or sys.platform)
        raise HostUnsupported(f"wsl2 needs Windows 10 (build {MIN_WINDOWS_BUILD}) or Windows 11; "
                              f"this host runs {system}")
    build = sys.getwindowsversion().build  # type: ignore[attr-defined]
    if build < MIN_WINDOWS_BUILD:
        raise HostUnsupported(f"wsl2 needs Windows 10 (build {MIN_WINDOWS_BUILD}) or Windows 11; "
                              f"this host runs Windows build {build}")
    try:
        wsl.executable()
    except DriverError as exc:
        raise HostUnsupported(f"wsl2 needs WSL 2 ({exc})") from exc


def image_problem(location: str) -> str | None:
    """None for a root filesystem tarball, else the reason it is not one."""
    path = urlsplit(location).path if "://" in location else location
    name = path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].lower()
    if TARBALL.search(name):
        return None
    stem = name
    for suffix in COMPRESSIONS:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    for ext, why in NOT_A_ROOTFS.items():
        if stem.endswith(ext):
            return why
    return "only .tar, .tar.gz, .tar.xz, .tar.bz2, .tar.zst (and .tgz, .txz, .tbz2, .tzst) root filesystems work"


def validate(cfg: LimaYAML) -> None:
    check_host()
    vm_type = cfg.vm_type or NAME
    if cfg.mount_type is not None and cfg.mount_type != MOUNT_TYPE:
        raise ValidationError(f'field `mountType` must be "{MOUNT_TYPE}" for the WSL2 driver, got "{cfg.mount_type}"')
    if cfg.os == "Windows":
        raise ValidationError("the WSL2 driver cannot run Windows guests (`os: Windows`); use vmType qemu")
    if cfg.tpm:
        raise ValidationError("field `tpm` is not supported by the WSL2 driver")
    ignored = sorted(k for k, v in cfg.to_json().items() if k not in KNOWN_KEYS and v not in (None, [], {}, ""))
    if ignored:
        log.warning("Ignoring: vmType %s: %s", vm_type, ", ".join(ignored))
    arch = cfg.arch or host_arch()
    if arch != host_arch():
        raise ValidationError(f'unsupported arch: "{arch}" (WSL 2 runs only this host\'s arch, {host_arch()})')
    for image in cfg.images or []:
        if (image.arch or arch) != arch:
            continue
        why = image_problem(image.location)
        if why:
            raise ValidationError(f"unsupported image type for vmType: {vm_type}, tarball root file system "
                                  f"required: {image.location!r} ({why})")
    if cfg.user is not None and cfg.user.passwordless_sudo is False:
        raise ValidationError("`user.passwordlessSudo: false` is not supported by the WSL2 driver")
    device = (cfg.audio.device if cfg.audio else None) or ""
    if device:
        log.warning("Ignoring: vmType %s: `audio.device`: %s", vm_type, device)
