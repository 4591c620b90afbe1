"""Helpers for lima-driver-microvm's tests: where the test guest is, and a template booting it."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
TEMPLATE = HERE.parent / "templates" / "test-guest.yaml"
GUEST_ENV = "LIMA_TEST_GUEST_DIR"


def guest_dir() -> Path | None:
    """The built test guest, if it has virtio_mmio in its initramfs (microvm's devices need it)."""
    d = Path(os.environ.get(GUEST_ENV) or REPO / ".cache" / "test-guest" / "current")
    if not all((d / f).is_file() for f in ("vmlinux", "initrd.img", "disk.qcow2", "manifest.json")):
        return None
    if '"virtio_mmio"' not in (d / "manifest.json").read_text():
        return None  # built before scripts/build-test-guest added it
    return d.resolve()


def write_template(dest: Path, guest: Path, **vm_opts: object) -> Path:
    """templates/test-guest.yaml with the guest's files at absolute paths."""
    data = yaml.safe_load(TEMPLATE.read_text())
    image = data["images"][0]
    image["location"] = str(guest / "disk.qcow2")
    image["kernel"]["location"] = str(guest / "vmlinux")
    image["initrd"]["location"] = str(guest / "initrd.img")
    data["vmOpts"]["microvm"].update(vm_opts)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest
