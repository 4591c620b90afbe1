"""``lima drivers``: list the installed drivers; make an external executable of one."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import typer

from ..errors import LimaError
from . import drivers_new
from ._common import choice, info, new_app

app = new_app("Inspect, build and write VM drivers.")
app.command("new")(drivers_new.new)


def _availability(entry: Any) -> str:
    """"yes", or "no: <reason>", without leaving any process behind."""
    from .. import registry
    from ..errors import HostUnsupported

    if entry.kind == registry.INTERNAL:
        try:
            host = registry.load(entry)
            host.check_host()
        except HostUnsupported as exc:
            return f"no: {exc.message}"
        except LimaError as exc:
            return f"broken: {exc.message}"
        return "yes"
    from ..external import supervisor

    with tempfile.TemporaryDirectory(prefix="lima-drv-", dir="/tmp") as tmp:
        try:
            host = registry.load(entry, Path(tmp))
            host.check_host()
        except HostUnsupported as exc:
            return f"no: {exc.message}"
        except LimaError as exc:
            return f"broken: {exc.message}"
        finally:
            supervisor.stop_servers(Path(tmp), force=True)
    return "yes"


#: the table's columns; LOCATION (an executable's path), the one of unbounded width, comes last, never folded
COLUMNS = ("NAME", "KIND", "AVAILABLE", "DISTRIBUTION", "LOCATION")


@app.command("list")
def list_(format_: str = typer.Option("table", "--format", help="table or json"),
          check: bool = typer.Option(True, "--check/--no-check", help="load each driver to see if it can run here")) -> None:
    """List every driver found, internal and external, with the ones it shadows."""
    from .. import registry

    choice(format_, ("table", "json"), "format")
    reg = registry.discover()
    rows = []
    for name in reg.names():
        winner = reg.drivers[name]
        for entry in [winner, *winner.shadows]:
            shadowed = entry is not winner
            dist = (entry.distribution, entry.version) if entry.distribution else \
                registry.executable_distribution(entry) if entry.is_external else None
            rows.append({
                "name": entry.name,
                "kind": entry.kind,
                "location": entry.location,
                "entryPoint": entry.entry_point.value if entry.entry_point is not None else "",
                "source": entry.source,
                "distribution": " ".join(filter(None, dist)) if dist else "",
                "available": ("-" if shadowed else _availability(entry) if check else "unchecked"),
                "shadowedBy": winner.location if shadowed else "",
                "note": entry.note,
            })
    if format_ == "json":
        print(json.dumps(rows, indent=2))
    else:
        _table(rows)
    for msg in reg.warnings:
        info(f"WARNING: {msg}")


def _table(rows: list[dict[str, str]]) -> None:
    """One line per driver, columns aligned; what does not fit a column becomes a numbered note below."""
    import os

    home = os.path.expanduser("~")
    notes: list[str] = []

    def noted(status: str, text: str) -> str:
        if text not in notes:
            notes.append(text)
        return f"{status} [{notes.index(text) + 1}]"

    lines = [COLUMNS]
    for r in rows:
        what = f"{r['name']} ({r['kind']})"
        available = r["available"]
        if r["shadowedBy"]:
            available = noted("shadowed", f"{what}: shadowed by {r['shadowedBy']}" +
                              (f"; {r['note']}" if r["note"] else ""))
        elif ": " in available:
            status, _, reason = available.partition(": ")
            available = noted(status, f"{what}: {reason}")
        # An internal driver has no file of its own: its distribution says where it comes from (and
        # --format json its entry point). An executable's path can be long: it goes last, unfolded.
        location = "-" if r["kind"] == "internal" else r["location"]
        if location.startswith(home + os.sep):
            location = "~" + location[len(home):]
        lines.append((r["name"], r["kind"], available, r["distribution"] or "-", location))
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    for line in lines:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]]).rstrip())
    if notes:
        print()
        for i, note in enumerate(notes, 1):
            print(f"[{i}] {note}")


@app.command("build-external")
def build_external(
    name: str = typer.Argument(..., help="an installed internal driver"),
    dest: Path = typer.Option(None, "--dest", help="directory to write lima-driver-NAME into "
                                                   "(default: <prefix>/libexec/lima)"),
) -> None:
    """Write an executable lima-driver-NAME that serves the installed internal driver NAME."""
    from .. import registry
    from ..external.build import write_executable

    entries = [e for e in registry.internal_entries() if e.name == name]
    if not entries:
        known = ", ".join(sorted({e.name for e in registry.internal_entries()})) or "none"
        raise LimaError(f"no internal driver named {name!r} is installed (internal drivers: {known})")
    entry = entries[0]
    assert entry.entry_point is not None
    registry.load_internal_class(entry)  # fail now, not when the executable first runs
    if dest is None:
        self_dirs = registry.self_dirs()
        if not self_dirs:
            raise LimaError("cannot tell where lima is installed; pass --dest DIR")
        dest = self_dirs[0].parent / "libexec" / "lima"
    path = write_executable(dest, name, entry.entry_point.value)
    info(f"Wrote {path}. {how_to_use(path, name)}")


def how_to_use(path: Path, name: str) -> str:
    """What makes lima run the executable at *path* for driver *name*, found by asking discovery itself."""
    import logging
    import os

    from .. import registry

    listed = {n.strip() for n in os.environ.get(registry.EXTERNAL_DRIVERS_ENV, "").split(",") if n.strip()}
    external = ",".join(sorted(listed | {name}))
    env = {**os.environ, registry.EXTERNAL_DRIVERS_ENV: external}
    need = [] if name in listed else [f"{registry.EXTERNAL_DRIVERS_ENV}={external}"]
    winner = registry.discover(env=env).drivers.get(name)
    if winner is None or winner.location != str(path.absolute()):
        # Not found, or found after another: LIMA_DRIVERS_PATH is searched first, in order.
        current = os.environ.get(registry.DRIVERS_PATH_ENV)
        value = os.pathsep.join(filter(None, [str(path.parent.absolute()), current]))
        env[registry.DRIVERS_PATH_ENV] = value
        quiet = logging.getLogger("lima_core")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # the first discovery has said what is wrong with the paths
        try:
            winner = registry.discover(env=env).drivers.get(name)
        finally:
            quiet.setLevel(level)
        if winner is None or winner.location != str(path.absolute()):
            return (f"lima would not use it: {winner.location if winner else 'another driver'} comes first "
                    f"(see `lima drivers list`)")
        shown = f"{path.parent.absolute()}{os.pathsep}${registry.DRIVERS_PATH_ENV}" if current else \
            str(path.parent.absolute())
        need.insert(0, f"{registry.DRIVERS_PATH_ENV}={shown}")
        why = (f"lima searches {registry.DRIVERS_PATH_ENV} before <prefix>/libexec/lima, and an executable there "
               "before the console script a distribution installed")
        return f"To make lima use it, set {' and '.join(need)} ({why})."
    if not need:
        return "lima uses it now (LIMA_EXTERNAL_DRIVERS lists the driver)."
    return f"To use it instead of the internal driver, set {need[0]}."
