"""Additional disks (``additionalDisks:``): ``$LIMA_HOME/_disks/<name>/datadisk``, locked while attached.

A disk is locked to one instance with an ``in_use_by`` symlink pointing at the
instance directory, as Lima does; another instance cannot attach it until the
VM that holds it has stopped (or ``lima stop -f`` unlocked it).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lima_core import dirnames, filenames
from lima_core.errors import StartFailed

DATADISK = "datadisk"
IN_USE_BY = "in_use_by"


def names(additional_disks: list | None) -> list[str]:
    """Disk names from ``additionalDisks`` (``- name`` or ``- {name: ...}``)."""
    out = []
    for entry in additional_disks or []:
        name = entry if isinstance(entry, str) else (entry or {}).get("name") if isinstance(entry, dict) else None
        if name:
            out.append(str(name))
    return out


def disk_dir(name: str) -> Path:
    return dirnames.lima_home() / filenames.DISKS_DIR / name


def path(name: str) -> Path:
    return disk_dir(name) / DATADISK


def lock(name: str, instance_dir: Path) -> None:
    link = disk_dir(name) / IN_USE_BY
    try:
        os.symlink(instance_dir, link)
    except FileExistsError:
        holder = os.readlink(link)
        if Path(holder) != instance_dir:
            raise StartFailed(f"additional disk {name!r} is in use by the instance in {holder}") from None


def unlock(name: str, instance_dir: Path) -> None:
    link = disk_dir(name) / IN_USE_BY
    with contextlib.suppress(OSError):
        if Path(os.readlink(link)) == instance_dir:
            link.unlink()
