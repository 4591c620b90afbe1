"""``lima list``: instances and their status (Lima's ``limactl list``)."""

from __future__ import annotations

import json
import logging
import os
import sys

import typer

from ..errors import LimaError
from ._common import complete_instances

FORMATS = ("table", "json", "yaml")
log = logging.getLogger("lima_core")
COLUMNS = ("NAME", "STATUS", "SSH", "VMTYPE", "ARCH", "CPUS", "MEMORY", "DISK", "DIR")


def list_(
    names: list[str] = typer.Argument(None, help="only these instances", autocompletion=complete_instances,
                                      show_default=False),
    format_: str = typer.Option(None, "--format", "-f", show_default=False, help="json, yaml, table (the default), "
                                "or a Go template such as '{{.Name}} {{.Status}}' (fields: --list-fields)"),
    list_fields: bool = typer.Option(False, "--list-fields", help="list the fields a --format template can use"),
    json_: bool = typer.Option(False, "--json", help="same as --format=json"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print the names only"),
    all_fields: bool = typer.Option(False, "--all-fields", help="show every column of the table, however narrow "
                                    "the terminal"),
    yq_: list[str] = typer.Option([], "--yq", help="apply a yq expression to each instance (repeatable)"),
    filter_: list[str] = typer.Option([], "--filter", "-l", help="only instances for which the yq expression holds, "
                                      "e.g. '.status == \"Running\"' (repeatable: all must hold)"),
) -> None:
    """List instances of Lima.

    \b
    Formats: --format json | yaml | table | '{{.Name}} {{.SSHLocalPort}}' (a Go template;
    {{.Field}}, {{.Field.Sub}}, {{json .}} and {{yaml .Field}} are evaluated).
    """
    from ..dirnames import instance_names

    format_given = format_ is not None
    format_ = format_ or "table"
    if json_:
        if format_given:
            raise LimaError("option --json conflicts with option --format")
        format_ = "json"
    if list_fields:
        if format_given or json_:
            raise LimaError("option --list-fields conflicts with option --format")
        if yq_ or filter_:
            raise LimaError("option --list-fields conflicts with options --yq and --filter")
        from .. import listformat

        print("\n".join(listformat.field_names()))
        return
    if yq_ and format_ not in ("json", "yaml") and (format_given or json_):
        raise LimaError("option --yq only works with --format json or yaml")
    if quiet and format_ != "table":
        raise LimaError("option --quiet can only be used with '--format table'")
    template = format_ not in FORMATS
    if template:
        if "{{" not in format_:
            raise LimaError(f"invalid format {format_!r}; use json, yaml, table or a Go template ('{{{{.Name}}}}')")
        from .. import listformat

        listformat.check(format_)

    all_names = instance_names()
    _warn_interrupted_deletes(names, all_names)
    unmatched = False
    if names:
        from ..store import validate_name

        for n in names:
            validate_name(n)  # a name that cannot be an instance's is bad input, not a miss
            if n not in all_names:
                log.warning("No instance matching %s found.", n)
                unmatched = True
        wanted = [n for n in all_names if n in names]
    else:
        wanted = all_names
        if not wanted:
            log.warning("No instance found. Run `lima create` to create an instance.")
            return
    if quiet and not yq_ and not filter_:
        for name in wanted:
            print(name)
        raise typer.Exit(1 if unmatched else 0)
    instances = _inspect(wanted)
    if filter_:
        instances = _filtered(instances, filter_)
    if quiet and not yq_:
        for inst in instances:
            print(inst.name)
        raise typer.Exit(1 if unmatched else 0)
    for inst in instances:
        for err in inst.errors:
            log.warning("%s: %s", inst.name, err)
    if yq_:
        _print_yq(instances, yq_ + ([".name"] if quiet else []), "yaml" if format_ == "yaml" else "json")
    elif format_ == "json":
        for inst in instances:
            print(json.dumps(inst.to_json()))
    elif format_ == "yaml":
        from ..yamlfile import dump

        sys.stdout.write("---\n".join(dump(inst.to_json()) for inst in instances))
    elif template:
        from .. import listformat

        host = _host_fields()
        for inst in instances:
            print(listformat.render(format_, listformat.data(inst, host)))
    else:
        _table(instances, all_fields)
    if unmatched:
        raise typer.Exit(1)


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
    from .. import store

    return store.inspect_all(names)


def _filtered(instances: list, filters: list[str]) -> list:
    from .. import yq

    expr = " | ".join(f"select({f})" for f in filters)
    results = yq.evaluate(expr, [inst.to_json() for inst in instances], "--filter")
    return [inst for inst, got in zip(instances, results, strict=True) if got]


def _print_yq(instances: list, exprs: list[str], fmt: str) -> None:
    from .. import yq

    results = yq.evaluate(" | ".join(f"({e})" for e in exprs), [inst.to_json() for inst in instances], "--yq")
    if fmt == "json":
        for values in results:
            for value in values:
                print(value if isinstance(value, str) else json.dumps(value))
        return
    from ..yamlfile import dump

    docs = [v for values in results for v in values]
    sys.stdout.write("---\n".join(dump(v) for v in docs))


def _host_fields() -> dict[str, str]:
    from .. import dirnames, filenames
    from ..limatype import host_arch

    return {"HostOS": {"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(sys.platform, sys.platform),
            "HostArch": host_arch(), "LimaHome": str(dirnames.lima_home()),
            "IdentityFile": str(dirnames.config_dir() / filenames.USER_KEY)}


def _table(instances: list, all_fields: bool) -> None:
    from ..limatype import host_arch
    from ..units import human_size

    home = os.path.expanduser("~")
    rows = [COLUMNS]
    for inst in instances:
        ssh = f"{inst.ssh_address or '127.0.0.1'}:{inst.ssh_local_port}" if inst.ssh_local_port else "-"
        directory = inst.dir.replace(home, "~", 1) if inst.dir.startswith(home + os.sep) else inst.dir
        rows.append((inst.name, inst.status or "Unknown", ssh, inst.vm_type or "-", inst.arch or "-",
                     str(inst.cpus or "-"), human_size(inst.memory) if inst.memory else "-",
                     human_size(inst.disk) if inst.disk else "-", directory))
    shown = list(range(len(COLUMNS)))
    width = _terminal_width()
    if width and not all_fields:
        # As limactl on a narrow terminal: drop DIR, then ARCH when every instance has the host's,
        # then VMTYPE when every instance has the same one (scripts read the full table: no terminal).
        for column, droppable in (("DIR", True), ("ARCH", all(r[4] == host_arch() for r in rows[1:])),
                                  ("VMTYPE", len({r[3] for r in rows[1:]}) <= 1)):
            if _line_width(rows, shown) > width and droppable:
                shown.remove(COLUMNS.index(column))
    widths = {i: max(len(r[i]) for r in rows) for i in shown}
    for row in rows:
        print("    ".join(row[i].ljust(widths[i]) for i in shown).rstrip())


def _line_width(rows: list, shown: list[int]) -> int:
    return sum(max(len(r[i]) for r in rows) for i in shown) + 4 * (len(shown) - 1)


def _terminal_width() -> int:
    """The terminal's width when stdout is one, else 0."""
    try:
        if not sys.stdout.isatty():
            return 0
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0
