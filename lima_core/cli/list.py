"""``lima list``: instances and their status."""

from __future__ import annotations

import json
import os
import sys

import typer

from ..errors import InstanceNotFound
from ._common import choice

FORMATS = ("table", "json", "yaml")
COLUMNS = ("NAME", "STATUS", "SSH", "VMTYPE", "ARCH", "CPUS", "MEMORY", "DISK", "DIR")


def list_(
    names: list[str] = typer.Argument(None, help="only these instances"),
    format_: str = typer.Option("table", "--format", help="table, json or yaml"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print the names only"),
) -> None:
    """List instances."""
    from ..dirnames import instance_names

    choice(format_, FORMATS, "format")
    all_names = instance_names()
    if names:
        missing = [n for n in names if n not in all_names]
        if missing:
            raise InstanceNotFound(f"no instance named {', '.join(map(repr, missing))}; "
                                   "run `lima list` to see the instances")
        wanted = [n for n in all_names if n in names]
    else:
        wanted = all_names
    if quiet:
        for name in wanted:
            print(name)
        return
    instances = _inspect(wanted)
    if format_ == "json":
        for inst in instances:
            print(json.dumps(inst.to_json()))
    elif format_ == "yaml":
        from ..yamlfile import dump

        sys.stdout.write("---\n".join(dump(inst.to_json()) for inst in instances))
    else:
        _table(instances)
    if not instances and not names:
        print("No instance found. Run `lima create` to create an instance.", file=sys.stderr)
    _warn_interrupted_deletes(names, all_names)


def _warn_interrupted_deletes(names: list[str] | None, existing: list[str]) -> None:
    """Name what killed `lima delete` runs left in LIMA_HOME, and the command that removes it."""
    import shlex

    from ..dirnames import deleting_dirs

    if not any(not names or name in names for name, _, _ in deleting_dirs()):
        return  # the common case: no store, no psutil
    from .. import store
    from ..units import human_size

    for path in store.interrupted_deletes():
        name = path.name[1:].rsplit(".deleting-", 1)[0]
        if names and name not in names:
            continue
        how = (f"`rm -rf {shlex.quote(str(path))}` removes it (`lima delete {name}` would also delete the "
               f"instance {name!r})") if name in existing else f"`lima delete {name}` removes it"
        print(f"WARNING: {path} is what an interrupted `lima delete {name}` left "
              f"({human_size(store.disk_usage(path))}); {how}", file=sys.stderr)


def _inspect(names: list[str]) -> list:
    if not names:
        return []  # without importing the store (yaml, psutil): `lima list` on a new machine stays quick
    from .. import store

    return store.inspect_all(names)


def _table(instances: list) -> None:
    from ..units import human_size

    home = os.path.expanduser("~")
    rows = [COLUMNS]
    for inst in instances:
        ssh = f"{inst.ssh_address or '127.0.0.1'}:{inst.ssh_local_port}" if inst.ssh_local_port else "-"
        directory = inst.dir.replace(home, "~", 1) if inst.dir.startswith(home + os.sep) else inst.dir
        rows.append((inst.name, inst.status or "Unknown", ssh, inst.vm_type or "-", inst.arch or "-",
                     str(inst.cpus or "-"), human_size(inst.memory) if inst.memory else "-",
                     human_size(inst.disk) if inst.disk else "-", directory))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for row in rows:
        print("    ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for inst in instances:
        for err in inst.errors:
            print(f"WARNING: {inst.name}: {err}", file=sys.stderr)
