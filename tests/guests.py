"""Where the VM tests find the Debian test guest with real cloud-init ("image B").

``scripts/build-cloud-guest`` builds it into ``.cache/cloud-guest/<key>/`` (``current`` points at the
latest build; ``scripts/test`` builds it before pytest, as root). Its two templates refer to that
directory relative to ``templates/``:

- ``templates/test-guest-cloud.yaml``: direct kernel boot of ``disk.qcow2`` (whole-disk ext4) with the
  image's own kernel (``vmlinux``) and initramfs;
- ``templates/test-guest-cloud-uefi.yaml``: ``uefi.qcow2`` (GPT, EFI system partition with GRUB, ext4
  root) booted through OVMF, the way Lima boots a cloud image.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLOUD_GUEST_DIR = REPO / ".cache" / "cloud-guest" / "current"
CLOUD_TEMPLATE = REPO / "templates" / "test-guest-cloud.yaml"
CLOUD_UEFI_TEMPLATE = REPO / "templates" / "test-guest-cloud-uefi.yaml"
#: what a finished build holds (manifest.json is written last)
CLOUD_GUEST_FILES = ("disk.qcow2", "uefi.qcow2", "vmlinux", "vmlinuz", "initrd.img", "manifest.json")


@dataclasses.dataclass(frozen=True)
class CloudGuest:
    """The built image B and the templates that boot it."""

    dir: Path
    #: direct kernel boot (SeaBIOS, the image's vmlinux and initrd.img)
    template: Path
    #: UEFI boot (OVMF, GRUB from the disk's EFI system partition)
    uefi_template: Path
    #: manifest.json: kernel version and command line, Debian release, package versions, sizes
    manifest: dict[str, Any]


def find_cloud_guest(directory: Path = CLOUD_GUEST_DIR) -> CloudGuest | str:
    """The built guest, or why there is none (a reason for pytest.skip)."""
    missing = [name for name in CLOUD_GUEST_FILES if not (directory / name).is_file()]
    if missing:
        return (f"the cloud-init test guest is not built ({directory} has no {', '.join(missing)}): "
                "run `.venv/bin/python scripts/build-cloud-guest` as root (scripts/test does)")
    manifest = json.loads((directory / "manifest.json").read_text())
    return CloudGuest(directory.resolve(), CLOUD_TEMPLATE, CLOUD_UEFI_TEMPLATE, manifest)
