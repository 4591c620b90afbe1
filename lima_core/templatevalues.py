"""What ``{{.X}}`` means in lima.yaml: the values of guest templates and of host templates.

Guest templates are paths and scripts used inside the guest (provision
scripts, probes, ``mountPoint``, ``copyToHost.guest``, ``guestSocket``): the
instance's name and hostname and the guest user. Host templates are paths on
the host (``mounts[].location``, ``copyToHost.host``, ``hostSocket``,
``message``): the instance directory, the host user, the temporary
directories. Lima takes the instance name from the directory holding
lima.yaml, and so does lima-core.
"""

from __future__ import annotations

import getpass
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from . import dirnames


class _User(Protocol):
    name: str
    uid: int
    home: str


def hostname(name: str) -> str:
    """The guest's hostname for instance *name* (Lima's: ``lima-<name>``, ``.`` and ``_`` as ``-``)."""
    return "lima-" + name.replace(".", "-").replace("_", "-")


def guest(name: str, user: _User, param: Mapping[str, str] | None) -> dict[str, object]:
    """A guest template's values: Name, Hostname, UID, User, Home, Param."""
    return {"Name": name, "Hostname": hostname(name), "UID": user.uid, "User": user.name, "Home": user.home,
            "Param": dict(param or {})}


def host(inst_dir: Path, param: Mapping[str, str] | None) -> dict[str, object]:
    """A host template's values: Dir, Name, UID, User, Home, Param, GlobalTempDir, TempDir, and the
    deprecated Instance and LimaHome."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return {"Home": str(Path.home()), "Dir": str(inst_dir), "Name": inst_dir.name, "Instance": inst_dir.name,
            "UID": os.getuid() if hasattr(os, "getuid") else 0, "User": user, "Param": dict(param or {}),
            "GlobalTempDir": tempfile.gettempdir() if os.name == "nt" else "/tmp", "TempDir": tempfile.gettempdir(),
            "LimaHome": str(dirnames.lima_home())}
