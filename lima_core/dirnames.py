"""Where lima-core keeps things: LIMA_HOME, instance directories, the cache."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import stat
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


# -- private directories ----------------------------------------------------------------------
#
# LIMA_HOME holds every instance, and _config/ holds what applies to all of them (default.yaml,
# override.yaml) and lima's SSH key pair: another local user who can write there can plant an
# override.yaml or a user.pub. Both are made 0700 whatever the umask; one found writable by all
# users is warned about, as a world-writable driver executable is refused.


def make_private(path: Path) -> Path:
    """Create directory *path* with mode 0700 whatever the umask (missing parents: 0755), unless it exists."""
    if path.is_dir():
        return path
    missing = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d)
            os.chmod(d, 0o755)
    try:
        os.mkdir(path)
    except FileExistsError:
        return path
    os.chmod(path, 0o700)
    return path


def ensure_home() -> Path:
    """LIMA_HOME, created 0700 if missing."""
    return make_private(lima_home())


def ensure_config_dir() -> Path:
    """``LIMA_HOME/_config``, created 0700 (and LIMA_HOME) if missing."""
    ensure_home()
    return make_private(config_dir())


_WARNED: set[str] = set()


def check_private() -> None:
    """Warn (once per process) about LIMA_HOME, ``_config`` or a file in it that every user may write."""
    import logging

    home, config = lima_home(), config_dir()
    paths = [home, config]
    with contextlib.suppress(OSError):  # the files that configure or key every instance (not lock files)
        paths += [config / entry for entry in sorted(os.listdir(config)) if not entry.endswith(".lock")]
    for path in paths:
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue
        if not mode & stat.S_IWOTH or stat.S_ISLNK(mode) or (stat.S_ISDIR(mode) and path not in (home, config)):
            continue
        if str(path) in _WARNED:
            continue
        _WARNED.add(str(path))
        what = "LIMA_HOME" if path == home else str(path.relative_to(home))
        logging.getLogger("lima_core").warning(
            "%s (%s) is writable by every user (mode %04o): anyone could plant a configuration applied to every "
            "instance, or an SSH key; run `chmod %s %s`", what, path, stat.S_IMODE(mode),
            "700" if stat.S_ISDIR(mode) else "o-w", shlex.quote(str(path)))


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


#: what ``lima delete`` renames an instance directory to before removing it: ``.<name>.deleting-<pid>``
_DELETING = re.compile(r"\.(?P<name>[^/]+)\.deleting-(?P<pid>\d+)")


def deleting_dir(name: str, pid: int) -> Path:
    """Where ``lima delete`` (process *pid*) moves instance *name* before removing it."""
    return lima_home() / f".{name}.deleting-{pid}"


def deleting_dirs(name: str | None = None) -> list[tuple[str, int, Path]]:
    """(instance name, pid of the deleting process, path) of each :func:`deleting_dir` in LIMA_HOME (of *name*
    only, if given). A live ``lima delete`` may still be removing one; ``store.interrupted_deletes`` tells."""
    home = lima_home()
    try:
        entries = sorted(os.listdir(home))
    except OSError:
        return []
    found = []
    for entry in entries:
        m = _DELETING.fullmatch(entry)
        if m and (name is None or m["name"] == name):
            found.append((m["name"], int(m["pid"]), home / entry))
    return found


def cache_dir() -> Path:
    """Lima's cache: ~/Library/Caches/lima, $XDG_CACHE_HOME/lima, %LocalAppData%\\lima."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "lima"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "lima"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lima"
