"""Where lima-core keeps things: LIMA_HOME, instance directories, the cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import filenames

LIMA_HOME_ENV = "LIMA_HOME"


def lima_home() -> Path:
    """$LIMA_HOME, or ~/.lima. Symlinks are resolved when it exists."""
    home = os.environ.get(LIMA_HOME_ENV) or str(Path.home() / ".lima")
    resolved = _resolved(home, os.getcwd())
    if resolved is not None:
        return resolved
    path = Path(home).expanduser()
    if not path.exists():
        return path.absolute()
    resolved = _RESOLVED[(home, os.getcwd())] = path.resolve()
    return resolved


#: (LIMA_HOME as given, cwd) -> the resolved directory, once it exists: `lima list` asks for every
#: instance, and resolving a path costs a system call per component.
_RESOLVED: dict[tuple[str, str], Path] = {}


def _resolved(home: str, cwd: str) -> Path | None:
    path = _RESOLVED.get((home, cwd))
    if path is not None and not path.is_dir():  # removed meanwhile (tests make and delete homes)
        del _RESOLVED[(home, cwd)]
        return None
    return path


def config_dir() -> Path:
    return lima_home() / filenames.CONFIG_DIR


def instance_dir(name: str) -> Path:
    return lima_home() / name


def instance_names() -> list[str]:
    """The instance directories in LIMA_HOME, sorted (names starting with ``_`` or ``.`` are not instances)."""
    home = lima_home()
    try:
        entries = sorted(os.listdir(home))
    except FileNotFoundError:
        return []
    return [n for n in entries if not n.startswith(("_", ".")) and (home / n).is_dir()]


def cache_dir() -> Path:
    """Lima's cache: ~/Library/Caches/lima, $XDG_CACHE_HOME/lima, %LocalAppData%\\lima."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "lima"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "lima"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lima"
