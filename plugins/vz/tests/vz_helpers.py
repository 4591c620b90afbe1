"""Helpers shared by the vz tests (a module with a unique name: every plugin has a conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from lima_driver_vz import identifier
from lima_driver_vz.hostinfo import HostFacts

from lima_core import filenames
from lima_core.limatype import Instance

MAC = HostFacts(system="Darwin", macos=(15, 5), arch="aarch64")


def make_bootable(inst: Instance, fake: Any | None = None) -> Path:
    """What the host leaves before start: the identifier, a raw disk and cidata.iso."""
    d = Path(inst.dir)
    identifier.ensure(d, fake.Virtualization if fake is not None else None)
    (d / filenames.DISK).write_bytes(b"\0" * 4096)
    (d / filenames.CIDATA_ISO).write_bytes(b"\0" * 4096)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
