"""UEFI firmware lookup (reference §4.5 item 5).

In order: an existing ``<instance>/qemu-efi-code.fd``; else the first
``firmware.images[]`` entry for qemu and this arch, copied there (local paths
and ``file://`` only: the driver does not download); else the system's EDK2
or OVMF/AAVMF files. ppc64le, s390x and ``legacyBIOS`` (x86_64 and armv7l)
need none.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from pathlib import Path

from lima_core import filenames
from lima_core.errors import ConfigError
from lima_core.limatype import LimaYAML

from .binary import qemu_arch

log = logging.getLogger(__name__)

LEGACY_BIOS_ARCHES = ("x86_64", "armv7l")
NO_FIRMWARE_ARCHES = ("ppc64le", "s390x")

#: distribution paths, after the ~/.local, <prefix>/share/qemu and <bindir>/share candidates
DISTRO_CANDIDATES = {
    "x86_64": ("/usr/share/edk2/x64/OVMF_CODE.4m.fd",  # Arch Linux edk2-ovmf
               "/usr/share/OVMF/OVMF_CODE.fd",  # Debian ovmf
               "/usr/share/OVMF/OVMF_CODE_4M.fd",  # Debian ovmf (newer)
               "/usr/share/edk2/ovmf/OVMF_CODE.fd",  # Fedora edk2-ovmf
               "/usr/share/qemu/ovmf-x86_64.bin"),  # openSUSE qemu-ovmf-x86_64
    "aarch64": ("/usr/share/edk2/aarch64/QEMU_CODE.fd",  # Arch Linux edk2-aarch64
                "/usr/share/AAVMF/AAVMF_CODE.fd",  # Debian qemu-efi-aarch64, Fedora edk2-aarch64
                "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"),  # Debian qemu-efi-aarch64 (unpadded)
    "armv7l": ("/usr/share/edk2/arm/QEMU_CODE.fd",  # Arch Linux edk2-arm
               "/usr/share/AAVMF/AAVMF32_CODE.fd"),  # Debian qemu-efi-arm, Fedora edk2-arm
    "riscv64": ("/usr/share/qemu-efi-riscv64/RISCV_VIRT_CODE.fd",  # Debian qemu-efi-riscv64
                "/usr/share/edk2/riscv/RISCV_VIRT_CODE.fd"),  # Fedora edk2-riscv64
}


def legacy_bios(config: LimaYAML, arch: str) -> bool:
    """``firmware.legacyBIOS``, honoured on x86_64 and armv7l only (a warning elsewhere)."""
    wanted = bool(config.firmware and config.firmware.legacy_bios)
    if wanted and arch not in LEGACY_BIOS_ARCHES:
        log.warning("field `firmware.legacyBIOS` is not supported for architecture %r, ignoring", arch)
        return False
    return wanted


def needs_firmware(config: LimaYAML, arch: str) -> bool:
    return arch not in NO_FIRMWARE_ARCHES and not legacy_bios(config, arch)


def edk2_arch(arch: str) -> str:
    return "riscv" if arch == "riscv64" else qemu_arch(arch)


def system_candidates(exe: str, arch: str, home: str | None = None) -> list[str]:
    home = home or str(Path.home())
    bindir = os.path.dirname(exe)
    prefix = os.path.dirname(bindir)
    name = f"edk2-{edk2_arch(arch)}-code.fd"
    return [os.path.join(home, ".local", "share", "qemu", name),  # XDG-like
            os.path.join(prefix, "share", "qemu", name),  # Homebrew and other prefixes
            os.path.join(bindir, "share", name),  # the Windows installer
            *DISTRO_CANDIDATES.get(arch, ())]


def find(config: LimaYAML, arch: str, exe: str, instance_dir: Path, *, copy: bool = True) -> str | None:
    """The firmware path for ``-drive if=pflash``, or None when the machine needs none.

    :param copy: copy a ``firmware.images[]`` file into the instance dir (False: only report it).
    :raises ConfigError: firmware is needed and none was found.
    """
    if not needs_firmware(config, arch):
        return None
    own = instance_dir / filenames.QEMU_EFI_CODE
    if own.exists():
        return str(own)
    for image in (config.firmware.images if config.firmware else None) or []:
        vm_type = image.extra.get("vmType", "")
        if vm_type not in ("", "qemu") or (image.arch or arch) != arch:
            continue
        source = _local_path(image.location)
        if source is None or not os.path.isfile(source):
            log.warning("firmware %r is not a local file; lima-driver-qemu does not download firmware",
                        image.location)
            continue
        if not copy:
            return str(own)
        import shutil  # here, not at import (see binary.find_executable)

        shutil.copyfile(source, own)
        log.info("using firmware %s (copied from %s)", own, image.location)
        return str(own)
    for candidate in system_candidates(exe, arch):
        if os.path.isfile(candidate):
            return candidate
    if arch == "x86_64":
        raise ConfigError(f"could not find firmware for {arch!r} (hint: try setting `firmware.legacyBIOS` to `true`)")
    raise ConfigError(f"could not find firmware for {arch!r} (hint: try copying the "
                      f"\"edk2-{edk2_arch(arch)}-code.fd\" firmware to $HOME/.local/share/qemu/)")


def _local_path(location: str) -> str | None:
    if location.startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlparse(location).path)
    if "://" in location:
        return None
    return os.path.expanduser(location)
