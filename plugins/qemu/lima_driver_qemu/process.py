"""The qemu process of an instance, found from the instance directory alone.

QEMU writes ``qemu.pid`` itself (``-pidfile``) and removes it when it exits
cleanly. A pid read from it is accepted only if that live process's command
line names this very pid file (so a reused pid, or another instance's qemu,
is never signalled), whatever the binary is called (``$QEMU_SYSTEM_*`` may
name a wrapper).

Exit is detected from the process table (``lima_core.processes.wait_exit``),
not with ``kill -0``: a qemu that was reparented stays a zombie until its new
parent reaps it, and a zombie has exited.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lima_core import filenames, pidfile

if TYPE_CHECKING:
    import psutil  # imported where used: a driver process starts faster without it

log = logging.getLogger(__name__)

VM_TYPE = "qemu"


def pid_path(instance_dir: Path) -> Path:
    return instance_dir / filenames.pid_file(VM_TYPE)


def find(instance_dir: Path) -> psutil.Process | None:
    """The instance's running qemu, or None (a stale pid file is removed)."""
    path = pid_path(instance_dir)
    status = pidfile.read(path, expect=str(path))
    if status.reason:
        log.warning("%s", status.reason)
    return status.process

