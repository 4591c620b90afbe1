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
            rows.append({
                "name": entry.name,
                "kind": entry.kind,
                "location": entry.location,
                "source": entry.source,
                "distribution": f"{entry.distribution} {entry.version}" if entry.distribution else "",
                "available": ("-" if shadowed else _availability(entry) if check else "unchecked"),
                "shadowedBy": winner.location if shadowed else "",
                "note": entry.note,
            })
    if format_ == "json":
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("NAME", "KIND", "LOCATION", "DISTRIBUTION", "AVAILABLE"):
        table.add_column(col, overflow="fold")
    for r in rows:
        available = f"shadowed by {r['shadowedBy']}" if r["shadowedBy"] else r["available"]
        table.add_row(r["name"], r["kind"], r["location"], r["distribution"] or "-", available)
    Console(soft_wrap=True).print(table)
    for msg in reg.warnings:
        info(f"WARNING: {msg}")


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
    info(f"Wrote {path}. To use it instead of the internal driver, set LIMA_EXTERNAL_DRIVERS={name}.")
