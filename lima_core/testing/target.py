"""The driver ``pytest --lima-driver NAME`` checks: found, loaded and made bootable.

Internal (the default): the ``lima.drivers`` entry point NAME, loaded in the
test process, one driver object per instance as the host makes them.

External (``--lima-driver-external``): the executable ``lima-driver-NAME``,
spawned once per instance directory as ``lima`` spawns it. It is looked up in
this order: Lima's discovery (``LIMA_DRIVERS_PATH``, ``<prefix>/libexec/lima``),
the console script beside this Python or on ``PATH``, and finally an
executable written into a temporary directory from the NAME entry point (what
``lima drivers build-external`` writes).

With ``--lima-driver-template FILE`` the start check boots that template:
its images are fetched into the instance directory and cidata is written, as
``lima create`` and the host agent would; and the boot check boots it to READY
with ``lima start``'s code. Without it the start check boots ``template:empty``
(an empty image shipped with lima-core) and is skipped if the driver refuses it
with a typed error; the boot check is skipped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import filenames, registry, templates
from ..errors import DriverNotFound, LimaError
from ..host import DriverHost
from ..limatype import Instance
from .conformance import DriverUnderTest


@dataclasses.dataclass
class Target:
    """A resolved driver: how to reach it, and what to say about it in the report."""

    name: str
    external: bool
    #: "entry point lima_driver_x.driver:XDriver (lima-driver-x 0.1)" or the executable's path and how it was found
    location: str
    make: Callable[[Path], DriverHost]
    cleanup: Callable[[], None]
    #: environment variables (None: unset) under which `lima` picks this very driver
    lima_env: dict[str, str | None] = dataclasses.field(default_factory=dict)
    #: the executable (external), or None (internal)
    executable: str | None = None
    #: the driver's Python source, for pointing at its lines: a package directory or a module file
    source_root: str | None = None


def resolve(name: str, external: bool, scratch: Path) -> Target:
    """Find driver *name*; *scratch* holds an executable written for it, if one is needed."""
    if not external:
        return _internal(name)
    return _external(name, scratch)


def _entry(name: str) -> registry.DriverEntry | None:
    return next((e for e in registry.internal_entries() if e.name == name), None)


def _internal(name: str) -> Target:
    entry = _entry(name)
    if entry is None:
        installed = sorted({e.name for e in registry.internal_entries()})
        raise DriverNotFound(
            f"no internal driver named {name!r}: no {registry.ENTRY_POINT_GROUP!r} entry point of that name is "
            f"installed (installed: {', '.join(installed) or 'none'}); for an executable lima-driver-{name}, "
            "add --lima-driver-external")
    cls = registry.load_internal_class(entry)
    assert entry.entry_point is not None
    origin = f" ({entry.distribution} {entry.version})" if entry.distribution else ""
    others = _external_names(exclude=name)
    return Target(name, False, f"entry point {entry.entry_point.value}{origin}",
                  lambda _dir: DriverHost(cls(), name), lambda: None,
                  lima_env={registry.EXTERNAL_DRIVERS_ENV: others or None}, source_root=source_root(entry))


def _external_names(exclude: str = "", add: str = "") -> str:
    """LIMA_EXTERNAL_DRIVERS without *exclude*, with *add*."""
    names = [n.strip() for n in os.environ.get(registry.EXTERNAL_DRIVERS_ENV, "").split(",") if n.strip()]
    names = [n for n in names if n != exclude] + ([add] if add and add not in names else [])
    return ",".join(names)


def source_root(entry: registry.DriverEntry | None) -> str | None:
    """Where the driver's Python source lives: its top-level package, or its module when that is in lima_core."""
    import importlib.util

    if entry is None or entry.entry_point is None:
        return None
    module = entry.entry_point.module
    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(module if top == "lima_core" else top)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    return str(origin.parent if spec.submodule_search_locations and top != "lima_core" else origin)


def find_executable(name: str) -> tuple[str, str] | None:
    """(path, how it was found) of ``lima-driver-<name>``, or None."""
    reg = registry.discover()
    winner = reg.drivers.get(name)
    for entry in ([winner, *winner.shadows] if winner else []):
        if entry.is_external:
            return entry.location, entry.source
    exe = filenames.driver_executable(name)
    beside = Path(sys.executable).parent / exe
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside), "console script"
    on_path = shutil.which(exe)
    if on_path:
        return on_path, "PATH"
    return None


def _external(name: str, scratch: Path) -> Target:
    from ..external import supervisor
    from ..external.build import write_executable
    from ..external.client import connect

    found = find_executable(name)
    if found is not None:
        path, how = found
        location = f"{path} (found by {how})"
    else:
        entry = _entry(name)
        if entry is None or entry.entry_point is None:
            raise DriverNotFound(f"no executable lima-driver-{name} was found (LIMA_DRIVERS_PATH, libexec, the "
                                 f"console scripts, PATH) and no internal driver {name!r} to build one from")
        path = str(write_executable(scratch, name, entry.entry_point.value))
        location = f"{path} (written from entry point {entry.entry_point.value})"
    served: list[Path] = []

    def make(instance_dir: Path) -> DriverHost:
        instance_dir.mkdir(parents=True, exist_ok=True)
        served.append(instance_dir)
        return connect(path, name, instance_dir)

    def cleanup() -> None:
        for d in served:
            supervisor.stop_servers(d, force=True)

    path = os.path.abspath(path)
    drivers_path = os.pathsep.join(filter(None, [path, os.environ.get(registry.DRIVERS_PATH_ENV)]))
    return Target(name, True, location, make, cleanup,
                  lima_env={registry.EXTERNAL_DRIVERS_ENV: _external_names(add=name),
                            registry.DRIVERS_PATH_ENV: drivers_path},
                  executable=path, source_root=source_root(_entry(name)))


# -- booting a template -------------------------------------------------------------------


def load_template(locator: str) -> dict[str, Any]:
    """The template as ``lima create`` would store it: embedded, layered, defaults filled."""
    from .. import limayaml

    tmpl = templates.read(locator)
    cfg = limayaml.from_data(templates.embed(tmpl), tmpl.locator)
    return cfg.to_json()


def fetch_images(host: DriverHost, inst: Instance) -> None:
    """What ``lima create`` does between ``create`` and ``create_disk``: fetch the images."""
    from .. import instance

    instance.fetch_images(inst, host)


def prepare_boot(host: DriverHost, inst: Instance) -> None:
    """What the host agent does after ``create_disk``, before ``start``: write cidata."""
    from .. import cidata, sshutil
    from ..users import guest_user

    assert inst.config is not None
    cidata.generate(inst, host.info(), host.boot_scripts(), guest_user(inst.config),
                    sshutil.public_keys(inst.config))


#: what the start check boots without a template (template:empty, read from lima-core itself so that
#: LIMA_TEMPLATES_PATH cannot hide it): an empty image, fetched offline
EMPTY_TEMPLATE = str(templates.BUILTIN_DIR / "empty.yaml")


def driver_under_test(target: Target, template: str | None, boot_timeout: float | None = None) -> DriverUnderTest:
    """The suite's view of *target*; *template* (a file or locator) is booted by the start and boot checks."""
    mode = "external" if target.external else "in-process"
    locator = template
    if template is not None and not template.startswith(("template:", "http://", "https://", "file://")):
        locator = os.path.abspath(os.path.expanduser(template))  # the checks may run elsewhere
    try:
        config = load_template(locator or EMPTY_TEMPLATE)
    except LimaError as exc:
        raise LimaError(f"--lima-driver-template {template}: {exc.message}") from None
    config["vmType"] = target.name
    timeout = {} if boot_timeout is None else {"boot_timeout": boot_timeout}
    return DriverUnderTest(target.name, mode, target.make, boot_config=config, fetch_images=fetch_images,
                           prepare_boot=prepare_boot, boot_optional=template is None, template=locator, lima_env=dict(target.lima_env),
                           executable=target.executable, **timeout)
