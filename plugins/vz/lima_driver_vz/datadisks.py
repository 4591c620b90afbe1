"""Additional disks (``additionalDisks:``) for vz: lima-core's disk store (:mod:`lima_core.disks`), locked while
attached.

A disk is locked to one instance with an ``in_use_by`` symlink pointing at the
instance directory, as Lima does; another instance cannot attach it until the
VM that holds it has stopped (or ``lima stop -f`` unlocked it).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from lima_core import disks
from lima_core.errors import StartFailed

DATADISK = disks.DATADISK
IN_USE_BY = disks.IN_USE_BY


def names(additional_disks: list | None) -> list[str]:
    """Disk names from ``additionalDisks`` (``- name`` or ``- {name: ...}``)."""
    out = []
    for entry in additional_disks or []:
        name = entry if isinstance(entry, str) else (entry or {}).get("name") if isinstance(entry, dict) else None
        if name:
            out.append(str(name))
    return out


def disk_dir(name: str) -> Path:
    return disks.disk_dir(name)


def path(name: str) -> Path:
    return disks.datadisk(name)


def lock(name: str, instance_dir: Path) -> None:
    try:
        disks.lock(name, instance_dir)
    except disks.DiskError as exc:
        raise StartFailed(exc.message) from None


def unlock(name: str, instance_dir: Path) -> None:
    with contextlib.suppress(OSError, disks.DiskError):
        disks.unlock(name, instance_dir)
