"""Which drivers exist: internal ones from entry points, external ones on disk.

Internal drivers are pip distributions registering ``lima.drivers`` entry
points (``qemu = "lima_driver_qemu.driver:QemuDriver"``). Listing them reads
metadata only; a driver's module is imported when that driver is loaded.
``LIMA_LOAD_DRIVERS=a,b`` restricts which entry points count (empty: none).

External drivers are executables named ``lima-driver-<name>``, found by Lima's
rules, one short function each below: ``LIMA_DRIVERS_PATH`` entries in order,
then ``<prefix>/libexec/lima`` and ``<prefix>/lib/lima`` for each prefix of the
running ``lima``. The first one found of a name wins; an internal driver wins
over an external one of the same name, unless the name is listed in
``LIMA_EXTERNAL_DRIVERS`` (or ``external:`` in ``$LIMA_HOME/_config/drivers.yaml``),
the analog of Lima's ``external_<name>`` build tags.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import stat
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from . import dirnames, filenames, textfile
from .errors import CorruptFile, DriverLoadError, DriverNotFound

if TYPE_CHECKING:
    from .host import DriverHost

log = logging.getLogger("lima_core")

ENTRY_POINT_GROUP = "lima.drivers"
DRIVERS_PATH_ENV = "LIMA_DRIVERS_PATH"
LOAD_DRIVERS_ENV = "LIMA_LOAD_DRIVERS"
EXTERNAL_DRIVERS_ENV = "LIMA_EXTERNAL_DRIVERS"
IS_WINDOWS = os.name == "nt"

INTERNAL = "internal"
EXTERNAL = "external"


@dataclasses.dataclass
class DriverEntry:
    """One driver that discovery found."""

    name: str
    kind: str  # INTERNAL or EXTERNAL
    #: "internal", or the absolute path of the executable
    location: str
    #: how it was found: "entry point", "LIMA_DRIVERS_PATH", "libexec", "console script"
    source: str
    entry_point: metadata.EntryPoint | None = None
    distribution: str | None = None
    version: str | None = None
    #: entries of the same name this one hides
    shadows: list[DriverEntry] = dataclasses.field(default_factory=list)
    #: why it was demoted, e.g. "listed in LIMA_EXTERNAL_DRIVERS"
    note: str = ""

    @property
    def is_external(self) -> bool:
        return self.kind == EXTERNAL


@dataclasses.dataclass
class Registry:
    """The result of one discovery pass."""

    drivers: dict[str, DriverEntry]
    #: names configured as external (LIMA_EXTERNAL_DRIVERS / drivers.yaml)
    external_names: frozenset[str]
    warnings: list[str]

    def names(self) -> list[str]:
        return sorted(self.drivers)

    def get(self, name: str) -> DriverEntry:
        entry = self.drivers.get(name)
        if entry is not None:
            return entry
        if name in self.external_names:
            raise DriverNotFound(
                f"driver {name!r} is configured as external ({EXTERNAL_DRIVERS_ENV}) but no "
                f"{filenames.DRIVER_EXECUTABLE_PREFIX}{name} executable was found; run `lima drivers build-external {name}` "
                f"or put it on {DRIVERS_PATH_ENV}")
        known = ", ".join(self.names()) or "none are installed; pip install lima-driver-qemu"
        raise DriverNotFound(f"unknown vmType {name!r}: no driver of that name (available: {known})")

    def load(self, name: str, instance_dir: str | os.PathLike[str] | None = None) -> DriverHost:
        """A :class:`DriverHost` for driver *name*; external ones serve *instance_dir*."""
        return load(self.get(name), instance_dir)


def discover(argv0: str | None = None, env: dict[str, str] | None = None) -> Registry:
    """Find every driver, applying all of Lima's precedence rules."""
    env = os.environ if env is None else env
    warnings: list[str] = []
    external_names = _configured_external(env, warnings)
    drivers: dict[str, DriverEntry] = {}
    demoted: list[DriverEntry] = []

    for entry in internal_entries(env):
        if entry.name in external_names:
            entry.note = f"listed in {EXTERNAL_DRIVERS_ENV}, so the external driver is used"
            demoted.append(entry)
            continue
        _add(drivers, entry)

    for entry in external_entries(argv0, env, warnings):
        if entry.name in drivers and drivers[entry.name].kind == INTERNAL:
            log.debug("external driver %s is shadowed by the internal one", entry.location)
        _add(drivers, entry)

    # A driver configured as external that no Lima path provides: use the
    # console script its distribution installed beside `lima`.
    for name in sorted(external_names - drivers.keys()):
        script = console_script(name, argv0)
        if script is not None:
            drivers[name] = DriverEntry(name, EXTERNAL, str(script), "console script",
                                        note=f"listed in {EXTERNAL_DRIVERS_ENV}")
    for name in external_names & drivers.keys():
        drivers[name].note = drivers[name].note or f"listed in {EXTERNAL_DRIVERS_ENV}"
    for entry in demoted:
        if entry.name in drivers:
            drivers[entry.name].shadows.append(entry)
    for msg in warnings:
        log.warning("%s", msg)
    return Registry(drivers, frozenset(external_names), warnings)


def _add(drivers: dict[str, DriverEntry], entry: DriverEntry) -> None:
    winner = drivers.get(entry.name)
    if winner is None:
        drivers[entry.name] = entry
    else:
        winner.shadows.append(entry)


# -- internal drivers -------------------------------------------------------------------


def _allowed(env: dict[str, str]) -> set[str] | None:
    value = env.get(LOAD_DRIVERS_ENV)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def internal_entries(env: dict[str, str] | None = None) -> Iterator[DriverEntry]:
    """Entry points of group ``lima.drivers``, without importing them."""
    allowed = _allowed(os.environ if env is None else env)
    points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP),
                    key=lambda ep: (ep.name, ep.dist.name if ep.dist else ""))
    for ep in points:
        if allowed is not None and ep.name not in allowed:
            continue
        dist = ep.dist
        yield DriverEntry(ep.name, INTERNAL, INTERNAL, "entry point", entry_point=ep,
                          distribution=dist.name if dist else None, version=dist.version if dist else None)


def _configured_external(env: dict[str, str], warnings: list[str]) -> set[str]:
    names = {n.strip() for n in env.get(EXTERNAL_DRIVERS_ENV, "").split(",") if n.strip()}
    path = Path(env.get(dirnames.LIMA_HOME_ENV) or Path.home() / ".lima") / filenames.CONFIG_DIR / filenames.DRIVERS_YAML
    if path.exists():
        import yaml

        try:
            data = yaml.safe_load(textfile.read(path)) or {}
            listed = data.get("external", []) if isinstance(data, dict) else None
            if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
                raise ValueError("`external` must be a list of driver names")
            names.update(listed)
        except CorruptFile as exc:
            warnings.append(f"ignoring {exc.message}")
        except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
            warnings.append(f"ignoring {path}: {' '.join(str(exc).split())}")
    return names


# -- external drivers -------------------------------------------------------------------


def external_entries(argv0: str | None, env: dict[str, str], warnings: list[str]) -> Iterator[DriverEntry]:
    """Every ``lima-driver-*`` executable in Lima's search order (duplicates included)."""
    for entry in env.get(DRIVERS_PATH_ENV, "").split(os.pathsep):
        if entry:
            yield from _from_path_entry(Path(entry), warnings)
    for directory in libexec_dirs(argv0):
        for path in _scan_dir(directory, warnings):
            yield _external(path, "libexec")


def _from_path_entry(entry: Path, warnings: list[str]) -> Iterator[DriverEntry]:
    """One LIMA_DRIVERS_PATH entry: a directory (not recursive) or one executable."""
    try:
        st = entry.stat()
    except OSError as exc:
        warnings.append(f"{DRIVERS_PATH_ENV}: skipping {entry}: {exc.strerror}")
        return
    if stat.S_ISDIR(st.st_mode):
        for path in _scan_dir(entry, warnings):
            yield _external(path, DRIVERS_PATH_ENV)
    elif filenames.driver_name(entry.name) is not None and _usable(entry, warnings):
        yield _external(entry, DRIVERS_PATH_ENV)
    else:
        warnings.append(f"{DRIVERS_PATH_ENV}: skipping {entry}: not an executable named "
                        f"{filenames.DRIVER_EXECUTABLE_PREFIX}<name>")


def _scan_dir(directory: Path, warnings: list[str]) -> Iterator[Path]:
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        warnings.append(f"cannot read driver directory {directory}: {exc.strerror}")
        return
    for name in names:
        path = directory / name
        if filenames.driver_name(name) is not None and path.is_file() and _usable(path, warnings):
            yield path


def _usable(path: Path, warnings: list[str]) -> bool:
    """Executable, and not writable by everyone (anyone could swap in their own driver)."""
    if IS_WINDOWS:
        return True
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        warnings.append(f"skipping driver {path}: {exc.strerror}")
        return False
    if not mode & 0o111:
        return False
    if mode & stat.S_IWOTH:
        warnings.append(f"refusing driver {path}: it is world-writable, so any user could replace it; "
                        f"run `chmod o-w {path}`")
        return False
    try:
        dir_mode = path.parent.stat().st_mode
    except OSError:
        return True
    if dir_mode & stat.S_IWOTH and not dir_mode & stat.S_ISVTX:
        warnings.append(f"refusing driver {path}: its directory is world-writable (without the sticky bit), "
                        f"so any user could replace it; run `chmod o-w {path.parent}`")
        return False
    return True


def _external(path: Path, source: str) -> DriverEntry:
    name = filenames.driver_name(path.name)
    assert name is not None
    return DriverEntry(name, EXTERNAL, str(path.absolute()), source)


def self_dirs(argv0: str | None = None) -> list[Path]:
    """The running lima's directories: argv[0] as found on PATH (symlinks kept),
    then the same with symlinks resolved, if different."""
    arg = argv0 if argv0 is not None else sys.argv[0]
    if not arg:
        return []
    if os.sep not in arg and (found := shutil.which(arg)):
        arg = found
    path = Path(os.path.abspath(arg))
    dirs = [path.parent]
    real = Path(os.path.realpath(path)).parent
    if real != dirs[0]:
        dirs.append(real)
    return dirs


def libexec_dirs(argv0: str | None = None) -> list[Path]:
    """``<prefix>/libexec/lima`` and ``<prefix>/lib/lima`` that exist and are not empty."""
    out: list[Path] = []
    for self_dir in self_dirs(argv0):
        prefix = self_dir.parent
        for candidate in (prefix / "libexec" / "lima", prefix / "lib" / "lima"):
            try:
                if candidate not in out and candidate.is_dir() and any(candidate.iterdir()):
                    out.append(candidate)
            except OSError:
                continue
    return out


def console_script(name: str, argv0: str | None = None) -> Path | None:
    """The console script ``lima-driver-<name>`` beside the running lima or this Python, if there is one."""
    exe = filenames.driver_executable(name)
    candidates = [d / exe for d in self_dirs(argv0)] + [Path(sys.executable).parent / exe]
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


# -- loading ------------------------------------------------------------------------------


def load(entry: DriverEntry, instance_dir: str | os.PathLike[str] | None = None) -> DriverHost:
    """A DriverHost for *entry*: import it (internal) or reach its process (external)."""
    from .host import DriverHost

    if entry.kind == INTERNAL:
        return DriverHost(load_internal_class(entry)(), entry.name)
    if instance_dir is None:
        raise DriverLoadError(f"external driver {entry.name!r} needs an instance directory to serve")
    from .external.client import connect

    return connect(entry.location, entry.name, Path(instance_dir))


def load_internal_class(entry: DriverEntry) -> type:
    """Import an internal driver's class; DriverLoadError names the driver and the cause."""
    assert entry.entry_point is not None
    origin = f" (from {entry.distribution} {entry.version})" if entry.distribution else ""
    try:
        obj = entry.entry_point.load()
    except Exception as exc:  # any import-time failure of a third-party package
        raise DriverLoadError(f"driver {entry.name!r}{origin} failed to import: "
                              f"{type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise DriverLoadError(f"driver {entry.name!r}{origin}: entry point {entry.entry_point.value} "
                              "is not a driver class")
    return obj


def executable_distribution(entry: DriverEntry) -> tuple[str, str] | None:
    """(distribution, version) behind an external driver's executable, when Python installed it:
    the console script a distribution declares, or an executable `lima drivers build-external`
    wrote from an installed entry point. None for anything else (a Go binary, a script)."""
    path = Path(entry.location)
    for ep in metadata.entry_points(group="console_scripts", name=path.name):
        scripts = {Path(sys.executable).parent, *self_dirs()}
        if ep.dist is not None and path.parent in scripts:
            return ep.dist.name, ep.dist.version
    target = _built_target(path)
    if target is not None:
        for internal in internal_entries({}):
            if internal.entry_point is not None and internal.entry_point.value == target and internal.distribution:
                return internal.distribution, internal.version or ""
    return None


def _built_target(path: Path) -> str | None:
    """The ``module:Class`` an executable written by ``lima drivers build-external`` serves, or None."""
    from .external.build import served_target

    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return None
    return served_target(head.decode("utf-8", errors="replace"))


def all_entries(registry: Registry) -> Iterable[DriverEntry]:
    """Winners and the entries they shadow, for `lima drivers list`."""
    for name in registry.names():
        winner = registry.drivers[name]
        yield winner
        yield from winner.shadows
