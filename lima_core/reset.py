"""``lima factory-reset`` and ``lima protect``: an instance back to its configuration alone; a guard on delete."""

from __future__ import annotations

import contextlib
import os
import shutil

from . import filenames, store
from .errors import InstanceError

#: what a factory reset keeps besides *.yaml / *.yml: when the instance was made (the qemu driver's
#: defaults depend on it), its protection, and vz's machine identifier (Lima keeps it too)
KEEP = (filenames.LIMA_VERSION, filenames.PROTECTED, filenames.VZ_IDENTIFIER)


def factory_reset(name: str) -> list[str]:
    """Stop the instance by force and remove every file but its configuration; the notes of the stop."""
    from . import instance

    inst_dir = store.existing_dir(name)
    inst = store.inspect(name, driver_status=False)
    with instance.instance_lock(inst_dir, timeout=30):
        notes = instance.stop_forcibly(inst_dir, inst.vm_type)
        for entry in sorted(inst_dir.iterdir()):
            if entry.name.endswith((".yaml", ".yml")) or entry.name in KEEP or entry.name == instance.INSTANCE_LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
    return notes


def set_protected(name: str, on: bool) -> bool:
    """Protect (Lima's ``protected`` file, mode 0400) or unprotect the instance; False if it already was so."""
    path = store.existing_dir(name) / filenames.PROTECTED
    if path.exists() == on:
        return False
    if on:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        except OSError as exc:
            raise InstanceError(f"cannot protect {name!r}: {exc.strerror}") from None
        os.close(fd)
    else:
        path.unlink()
    return True
