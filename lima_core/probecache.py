"""A per-user cache of what probing the host found, keyed by the binary that was probed.

Some answers cost a process run or more: what a QEMU binary supports (a run
of ``qemu-system-* ... help`` each), whether KVM really runs a guest (a probe
boot). ``lima start``, its host agent and a driver process would each ask
again; a driver keeps the answer instead in a small JSON file in Lima's cache
directory (:func:`lima_core.dirnames.cache_dir`, e.g. ``~/.cache/lima``).

An entry's key is the binary's identity (its resolved path, size and
modification time) and whatever else the answer depends on (a CPU model, a
machine type); with ``boot=True`` also the host's kernel and this boot of it,
for answers about the host itself. A new or rebuilt binary, a new kernel or
a reboot asks again. The file keeps the newest entries only. A file that
cannot be read counts as empty; one that cannot be written makes only a
slower next start.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from . import atomicfile, dirnames

log = logging.getLogger("lima_core")

#: where Linux says which boot this is (a new value at every boot)
BOOT_ID = "/proc/sys/kernel/random/boot_id"

_lock = threading.Lock()


class ProbeCache:
    """One cache file: ``ProbeCache("qemu-accel-probe.json")``.

    :param version: part of every key; bump it when what is probed or stored
        changes, to forget the old answers.
    :param max_entries: how many entries the file keeps, the newest.
    :param directory: where the file lives, if not Lima's cache directory.
    """

    def __init__(self, filename: str, *, version: int = 1, max_entries: int = 32,
                 directory: Path | None = None) -> None:
        self.filename = filename
        self.version = version
        self.max_entries = max_entries
        self.directory = directory

    @property
    def path(self) -> Path:
        return (self.directory or dirnames.cache_dir()) / self.filename

    def key(self, exe: str, *parts: object, boot: bool = False) -> str:
        """The key of an answer about binary *exe* that also depends on *parts* (JSON values).

        :raises OSError: *exe* cannot be examined.
        """
        st = os.stat(exe)
        identity: list[object] = [self.version, os.path.realpath(exe), st.st_size, st.st_mtime_ns, *parts]
        if boot:
            identity += host_boot()
        import hashlib  # here: a driver process that never probes starts faster

        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under *key*, or None."""
        entry = self._read().get(key)
        return entry if isinstance(entry, dict) else None

    def update(self, key: str, values: dict[str, Any]) -> None:
        """Store *values* in the entry under *key* (merged into what it holds) and write the file."""
        with _lock:
            entries = self._read()
            entry = entries.get(key)
            entry = {**(entry if isinstance(entry, dict) else {}), **values, "at": time.time()}
            entries[key] = entry
            newest = sorted(entries.items(), key=lambda kv: kv[1].get("at", 0) if isinstance(kv[1], dict) else 0)
            path = self.path
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomicfile.write(path, json.dumps(dict(newest[-self.max_entries:]), indent=1) + "\n")
            except OSError as exc:
                log.debug("cannot write %s: %s", path, exc)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def host_boot() -> list[str]:
    """The host's kernel (release and build) and this boot of it ("" where the boot cannot be told)."""
    kernel = [os.uname().release, os.uname().version] if hasattr(os, "uname") else ["", ""]
    try:
        boot_id = Path(BOOT_ID).read_text().strip()
    except OSError:
        boot_id = ""
    return [*kernel, boot_id]
