"""``vz-identifier``: the instance's generic machine identifier, made once and kept.

The file holds ``VZGenericMachineIdentifier.dataRepresentation``. It is
written by ``create`` and read at every start. An empty file (``clone``
leaves one, so two instances never share an identifier) or a missing one is
regenerated. With the framework at hand it makes the identifier; without it
(``lima create`` on a host that cannot run vz) the same representation is
written directly: a binary property list ``{"ECID": <random 64-bit>}``, which
the framework reads back at start.
"""

from __future__ import annotations

import plistlib
import secrets
from pathlib import Path
from typing import Any

from lima_core import atomicfile, filenames


def path(instance_dir: Path) -> Path:
    return instance_dir / filenames.VZ_IDENTIFIER


def generate(vz: Any | None = None) -> bytes:
    """A new identifier's data representation, from the framework *vz* when given."""
    if vz is not None:
        return bytes(vz.VZGenericMachineIdentifier.alloc().init().dataRepresentation())
    return plistlib.dumps({"ECID": secrets.randbits(64)}, fmt=plistlib.FMT_BINARY)


def ensure(instance_dir: Path, vz: Any | None = None) -> bytes:
    """The identifier's bytes, creating or regenerating the file when missing or empty."""
    target = path(instance_dir)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        data = b""
    if data:
        return data
    data = generate(vz)
    atomicfile.write(target, data, mode=0o644, sync=True)  # the VM's identity: regenerated, it is another machine
    return data
