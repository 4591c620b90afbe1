"""``lima create``: a new instance from a template (Configure, Validate, Create, CreateDisk)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from ..errors import LimaError
from ._common import info


def load_template(locator: str, *, name: str | None, vm_type: str | None, sets: list[str], cpus: int | None,
                  memory: float | None, disk: float | None) -> tuple[str, dict[str, Any], str, str | None]:
    """(instance name, template data with the edits applied, source, text) for *locator*.

    text is the template's YAML when positions in it are meaningful (no base:), else None.
    """
    from .. import limayaml, templates
    from ..units import format_size

    tmpl = templates.read(locator, stdin=sys.stdin)
    data = templates.embed(tmpl)
    own = tmpl.document().data
    text = tmpl.text if isinstance(own, dict) and "base" not in own else None
    if vm_type:
        limayaml.apply_set(data, f'.vmType = "{vm_type}"')
    for expr in sets:
        limayaml.apply_set(data, expr)
    if cpus is not None:
        if cpus < 1:
            raise LimaError("--cpus must be at least 1")
        data["cpus"] = cpus
    if memory is not None:
        if memory <= 0:
            raise LimaError("--memory must be a positive number of GiB")
        data["memory"] = format_size(int(memory * (1 << 30)))
    if disk is not None:
        if disk <= 0:
            raise LimaError("--disk must be a positive number of GiB")
        data["disk"] = format_size(int(disk * (1 << 30)))
    instance_name = name if name is not None else tmpl.name  # --name "" is an (invalid) name, not a default
    if instance_name is None:
        raise LimaError("a template read from stdin needs --name")
    return instance_name, data, tmpl.locator, text


class _NoProgress:
    def stop(self) -> None:
        return None


def download_progress() -> tuple[Any, Any]:
    """(callback, stopper) rendering a rich progress bar on stderr while a file is fetched.

    Without a terminal there is no bar (the "Fetching" lines remain).
    """
    if not sys.stderr.isatty():
        return None, _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        console=Console(stderr=True), transient=True)
    tasks: dict[str, Any] = {}

    def update(label: str, done: int, total: int | None) -> None:
        if label not in tasks:
            if not tasks:
                progress.start()
            tasks[label] = progress.add_task(label.rsplit("/", 1)[-1][:40], total=total)
        progress.update(tasks[label], completed=done, total=total)

    class _Stopper:
        def stop(self) -> None:
            if tasks:
                progress.stop()

    return update, _Stopper()


def create(
    template: str = typer.Argument("template:default", help="template:NAME, a file, an http(s) URL, or - for stdin"),
    name: str = typer.Option(None, "--name", help="instance name (default: from the template)"),
    vm_type: str = typer.Option(None, "--vm-type", help="driver to use (see `lima drivers list`)"),
    set_: list[str] = typer.Option([], "--set", help="edit the template, e.g. '.cpus = 4' (repeatable)"),
    cpus: int = typer.Option(None, "--cpus", help="number of CPUs"),
    memory: float = typer.Option(None, "--memory", help="memory in GiB"),
    disk: float = typer.Option(None, "--disk", help="disk size in GiB"),
) -> None:
    """Create an instance from a template, without starting it."""
    from .. import instance

    inst_name, data, source, text = load_template(template, name=name, vm_type=vm_type, sets=set_, cpus=cpus,
                                                  memory=memory, disk=disk)
    callback, progress = download_progress()
    try:
        instance.create(inst_name, data, source, progress=info, download_progress=callback, text=text)
    finally:
        progress.stop()
    info(f"Run `lima start {inst_name}` to start the instance.")
