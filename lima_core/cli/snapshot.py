"""``lima snapshot create|apply|delete|list``."""

from __future__ import annotations

from typing import Any

import typer

from ..errors import LimaError
from ._common import info, new_app

app = new_app("Manage instance snapshots.")

_NAME = typer.Argument(...)
_TAG = typer.Option(None, "--tag", help="snapshot name")


def _call(name: str, hook: str, **kwargs: Any) -> Any:
    """Call *hook* on the instance's driver. An external driver server this command spawned for a
    stopped instance is stopped afterwards (no orphans)."""
    from pathlib import Path

    from .. import instance, store
    from ..external import supervisor

    store.existing_dir(name)
    inst = store.inspect(name)
    host = instance.load_driver(inst)
    try:
        return host.call(hook, **kwargs)
    finally:
        if not instance.host_agent_running(Path(inst.dir)):
            supervisor.stop_servers(Path(inst.dir))


def _tag(tag: str | None) -> str:
    if not tag:
        raise LimaError("--tag is required")
    return tag


@app.command("create")
def create(name: str = _NAME, tag: str = _TAG) -> None:
    """Save a snapshot (memory too, while running)."""
    _call(name, "create_snapshot", tag=_tag(tag))
    info(f"Snapshot {tag!r} of {name!r} created.")


@app.command("apply")
def apply(name: str = _NAME, tag: str = _TAG) -> None:
    """Revert the instance to a snapshot."""
    from pathlib import Path

    from .. import sshutil, store

    _call(name, "apply_snapshot", tag=_tag(tag))
    # A running guest is back in its past: the ssh ControlMaster's connection is not in it.
    sshutil.stop_master(Path(store.existing_dir(name)), name)
    info(f"Instance {name!r} reverted to snapshot {tag!r}.")


@app.command("delete")
def delete(name: str = _NAME, tag: str = _TAG) -> None:
    """Delete a snapshot."""
    _call(name, "delete_snapshot", tag=_tag(tag))
    info(f"Snapshot {tag!r} of {name!r} deleted.")


@app.command("list")
def list_(name: str = _NAME, quiet: bool = typer.Option(False, "--quiet", "-q", help="print the tags only")) -> None:
    """List snapshots."""
    lines = [ln for ln in _call(name, "list_snapshots").splitlines() if ln.strip()]
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


# Lima's aliases
app.command("save", hidden=True)(create)
app.command("load", hidden=True)(apply)
app.command("del", hidden=True)(delete)
app.command("ls", hidden=True)(list_)
