"""``lima snapshot create|apply|delete|list``."""

from __future__ import annotations

from typing import Any

import typer

from ..errors import LimaError
from ._common import info, new_app

app = new_app("Manage instance snapshots.")


def _driver(name: str) -> Any:
    from .. import instance, store

    store.existing_dir(name)
    inst = store.inspect(name)
    return instance.load_driver(inst), inst


def _done(name: str, inst: Any) -> None:
    """Stop an external driver server this command spawned for a stopped instance (no orphans)."""
    from pathlib import Path

    from .. import instance
    from ..external import supervisor

    if not instance.host_agent_running(Path(inst.dir)):
        supervisor.stop_servers(Path(inst.dir))


def _tag(tag: str | None) -> str:
    if not tag:
        raise LimaError("--tag is required")
    return tag


@app.command("create")
def create(name: str = typer.Argument(...), tag: str = typer.Option(None, "--tag", help="snapshot name")) -> None:
    """Save a snapshot (memory too, while running)."""
    host, inst = _driver(name)
    try:
        host.create_snapshot(tag=_tag(tag))
    finally:
        _done(name, inst)
    info(f"Snapshot {tag!r} of {name!r} created.")


@app.command("apply")
def apply(name: str = typer.Argument(...), tag: str = typer.Option(None, "--tag", help="snapshot name")) -> None:
    """Revert the instance to a snapshot."""
    from pathlib import Path

    from .. import sshutil

    host, inst = _driver(name)
    try:
        host.apply_snapshot(tag=_tag(tag))
    finally:
        _done(name, inst)
    # A running guest is back in its past: the ssh ControlMaster's connection is not in it.
    sshutil.stop_master(Path(inst.dir), name)
    info(f"Instance {name!r} reverted to snapshot {tag!r}.")


@app.command("delete")
def delete(name: str = typer.Argument(...), tag: str = typer.Option(None, "--tag", help="snapshot name")) -> None:
    """Delete a snapshot."""
    host, inst = _driver(name)
    try:
        host.delete_snapshot(tag=_tag(tag))
    finally:
        _done(name, inst)
    info(f"Snapshot {tag!r} of {name!r} deleted.")


@app.command("list")
def list_(name: str = typer.Argument(...),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="print the tags only")) -> None:
    """List snapshots."""
    host, inst = _driver(name)
    try:
        text = host.list_snapshots()
    finally:
        _done(name, inst)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not quiet:
        if lines:
            print("\n".join(lines))
        return
    if lines:
        header = lines[0].split()
        if len(header) < 2 or header[1] != "TAG":
            raise LimaError(f"cannot read the snapshot list of {name!r}: expected a header with TAG in column 2")
        for line in lines[1:]:
            cols = line.split()
            if len(cols) >= 2:
                print(cols[1])
