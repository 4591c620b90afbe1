"""``lima disk create|list|delete|unlock|resize|import``: additional disks (``additionalDisks:`` in lima.yaml)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from ._common import info, new_app

app = new_app("Lima disk management: disks an instance attaches with additionalDisks.",
              epilog="Examples:\n\n\b\n  lima disk create data --size 10GiB\n  lima disk ls\n"
                     "  lima edit default --set '.additionalDisks += [\"data\"]'\n  lima disk delete data")
log = logging.getLogger("lima_core")


def _complete_disks(incomplete: str) -> list[str]:
    from .. import disks

    return [n for n in disks.names() if n.startswith(incomplete)]


def _size(text: str) -> int:
    from ..units import parse_size

    return parse_size(text, "--size")


@app.command("create")
def create(name: str = typer.Argument(..., help="the new disk's name"),
           size: str = typer.Option(..., "--size", help="the disk size, e.g. 10GiB"),
           format_: str = typer.Option("qcow2", "--format", help="qcow2 (needs qemu-img) or raw (a sparse file)")) -> None:
    """Create a Lima disk (empty; the guest formats it on first use)."""
    from .. import disks
    from ..units import human_size

    disk = disks.create(name, _size(size), format_)
    info(f"Created {disk.format} disk {name!r} with size {human_size(disk.size)} ({disk.dir})")


@app.command("list")
def list_(names: list[str] = typer.Argument(None, help="only these disks", show_default=False,
                                            autocompletion=_complete_disks),
          json_: bool = typer.Option(False, "--json", help="one JSON object per disk")) -> None:
    """List existing Lima disks: NAME SIZE FORMAT DIR IN-USE-BY."""
    from .. import disks
    from ..units import human_size

    every = disks.names()
    wanted = every
    if names:
        for n in names:
            if n not in every:
                log.warning("No disk matching %s found.", n)
        wanted = [n for n in every if n in names]
    found = []
    for name in wanted:
        try:
            found.append(disks.inspect(name))
        except disks.DiskError as exc:
            log.error("%s", exc.message)
    if json_:
        for disk in found:
            print(json.dumps(disk.to_json()))
        return
    if not every:
        log.warning("No disk found. Run `lima disk create DISK --size SIZE` to create a disk.")
    rows = [("NAME", "SIZE", "FORMAT", "DIR", "IN-USE-BY")]
    rows += [(d.name, human_size(d.size), d.format, str(d.dir), d.instance) for d in found]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("    ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@app.command("delete")
def delete(names: list[str] = typer.Argument(..., help="disks to delete", autocompletion=_complete_disks),
           force: bool = typer.Option(False, "--force", "-f", help="delete even when in use or referred to")) -> None:
    """Delete one or more Lima disks (not one in use; one an instance refers to is skipped, with a warning)."""
    from .. import disks

    for name in names:
        try:
            disk = disks.inspect(name)
        except disks.DiskError:
            log.warning("Ignoring non-existent disk %r", name)
            continue
        if disks.delete(name, force=force):
            info(f"Deleted {name!r} ({disk.dir})")


@app.command("unlock")
def unlock(names: list[str] = typer.Argument(..., help="disks to unlock", autocompletion=_complete_disks)) -> None:
    """Unlock one or more Lima disks (emergency recovery: a lock an instance left behind)."""
    from .. import disks, store
    from ..errors import LimaError
    from ..limatype import STATUS_RUNNING

    for name in names:
        try:
            disk = disks.inspect(name)
        except disks.DiskError:
            log.warning("Ignoring non-existent disk %r", name)
            continue
        if not disk.instance:
            log.warning("Ignoring unlocked disk %r", name)
            continue
        owner = Path(disk.instance_dir)
        if owner.is_dir():
            try:
                inst = store.inspect(owner.name, driver_status=False)
            except LimaError:
                inst = None
            if inst is not None and owner.parent == store.dirnames.lima_home():
                if inst.errors:
                    log.warning("Cannot unlock disk %r: instance %r has errors: %s", name, inst.name,
                                "; ".join(inst.errors))
                    continue
                if inst.status == STATUS_RUNNING:
                    log.warning("Cannot unlock disk %r used by running instance %r", name, inst.name)
                    continue
        disks.unlock(name)
        info(f"Unlocked disk {name!r} ({disk.dir})")


@app.command("resize")
def resize(name: str = typer.Argument(..., help="the disk", autocompletion=_complete_disks),
           size: str = typer.Option(..., "--size", help="the new size, e.g. 20GiB (no shrinking)")) -> None:
    """Resize (grow) a Lima disk; its instance must be stopped. The guest grows the file system when it can."""
    from .. import disks
    from ..units import human_size

    disk = disks.resize(name, _size(size))
    info(f"Resized disk {name!r} to {human_size(disk.size)} ({disk.dir})")


@app.command("import")
def import_(name: str = typer.Argument(..., help="the new disk's name"),
            file: str = typer.Argument(..., help="a qcow2 or raw disk image to copy")) -> None:
    """Import an existing qcow2 or raw image as a Lima disk (a copy; the file is left as it is)."""
    from .. import disks
    from ..units import human_size

    disk = disks.import_(name, Path(file).expanduser())
    info(f"Imported {file} as {disk.format} disk {name!r} with size {human_size(disk.size)} ({disk.dir})")


app.command("ls", hidden=True)(list_)
app.command("remove", hidden=True)(delete)
app.command("rm", hidden=True)(delete)
