"""``lima create``: a new instance from a template, with Lima's edit flags (Configure, Validate, Create, CreateDisk)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from ..errors import LimaError
from ._common import info, tty
from ._editflags import EditFlags, edit_flags, expressions

TEMPLATE_HELP = "template:NAME, a file, an http(s) URL, or - for stdin (default: template:default)"
EXAMPLES = """Examples:

\b
  lima create                                  the instance "default", from template:default
  lima create --name=dev template:debian       the instance "dev", from template:debian
  lima create --cpus=2 --memory=2              with 2 CPUs and 2 GiB of memory
  lima create --set='.cpus = 2 | .memory = "2GiB"'   the same, as a yq expression
  lima create --list-templates                 the templates
  cat t.yaml | lima create --name=local -      a template from stdin (--name is needed)
"""


def resolve(arg: str | None, name: str | None) -> tuple[str, str | None]:
    """(template locator, instance name or None for the template's) for ``create``'s/``start``'s argument.

    No argument is template:default. A bare valid instance name that is not a file is Lima's
    deprecated form of ``--name=NAME template:default``.
    """
    import os

    from .. import store, templates

    if arg is None:
        return "template:default", name
    if templates.is_template_locator(arg) or os.path.exists(arg):
        return arg, name
    store.validate_name(arg)
    if name is not None and name != arg:
        raise LimaError(f"instance name {arg!r} and --name={name!r} cannot be given together")
    if arg != "default":
        import logging

        logging.getLogger("lima_core").warning(
            "creating %r from template:default; this form is deprecated: write `lima create --name=%s "
            "template:default`", arg, arg)
    return "template:default", arg


def read_template(locator: str, name: str | None) -> tuple[str, dict[str, Any], str, str | None]:
    """(instance name, embedded template data, source, text) for *locator*.

    text is the template's YAML when positions in it are meaningful (no base:), else None.
    """
    from .. import store, templates

    tmpl = templates.read(locator, stdin=sys.stdin)
    data = templates.embed(tmpl)
    own = tmpl.document().data
    text = tmpl.text if isinstance(own, dict) and "base" not in own else None
    instance_name = name if name is not None else tmpl.name  # --name "" is an (invalid) name, not a default
    if instance_name is None:
        raise LimaError("a template read from stdin needs --name")
    store.validate_name(instance_name)
    return instance_name, data, tmpl.locator, text


def load_template(locator: str, *, name: str | None, vm_type: str | None = None, sets: list[str] = (),
                  cpus: int | None = None, memory: float | None = None, disk: float | None = None,
                  edits: list[tuple[str, str]] = ()) -> tuple[str, dict[str, Any], str, str | None]:
    """(instance name, template data with the edits applied, source, text) for *locator*.

    The keyword arguments are the flags of the same names; *edits* are ``(flag, expression)``
    pairs (see :func:`._editflags.expressions`). text is None once an edit changed the data.
    """
    from .. import yq

    values: dict[str, Any] = {"set": list(sets), "vm_type": vm_type,
                              "cpus": None if cpus is None else str(cpus),
                              "memory": None if memory is None else str(memory),
                              "disk": None if disk is None else str(disk)}
    all_edits = list(edits) + expressions(EditFlags(values), new_instance=True)
    inst_name, data, source, text = read_template(locator, name)
    edited = yq.apply_all(all_edits, data)
    return inst_name, edited, source, text if edited == data else None


def interactive_review(name: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """Lima's menu before creating, with a terminal: proceed, edit in an editor, or exit (None)."""
    from .. import templates, yamlfile
    from ._editor import edit_text

    while True:
        info(f"Creating an instance {name!r}")
        answer = typer.prompt("  [1] Proceed with the current configuration\n"
                              "  [2] Open an editor to review or modify the current configuration\n"
                              "  [3] Exit\nChoose", default="1", err=True)
        if answer == "1":
            return data
        if answer == "3":
            return None
        if answer == "2":
            header = (f"# Review and modify the following configuration for Lima instance {name!r}.\n"
                      "# - To cancel, save this file as an empty file.\n\n")
            text = edit_text(yamlfile.dump(data), header)
            if not text.strip():
                return None
            doc = yamlfile.load(text, f"the configuration of {name!r}").data
            if not isinstance(doc, dict):
                raise LimaError("the edited configuration is not a YAML mapping")
            data = templates.embed(templates.Template(f"the configuration of {name!r}", text, None, name)) \
                if "base" in doc else doc
            return data


def make(locator: str, name: str | None, flags: EditFlags, *, dry_run: bool) -> str | None:
    """Create the instance (``create``, and ``start`` of a new one); its name, or None when nothing was made."""
    from .. import fields, instance, limayaml, registry, yamlfile

    edits = expressions(flags, new_instance=True)
    inst_name, data, source, text = load_template(locator, name=name, edits=edits)
    instance.refuse_existing(inst_name)
    if tty() and not dry_run:
        reviewed = interactive_review(inst_name, data)
        if reviewed is None:
            info("Exiting; no instance was created.")
            return None
        if reviewed != data:
            data, text = reviewed, None
    if dry_run:
        cfg = limayaml.from_data(data, source, text=text, warn_unknown=True)
        registry.discover().get(cfg.vm_type or "")
        fields.enforce(cfg, cfg.vm_type or "", source, warn=True)
        sys.stdout.write(yamlfile.dump(data))
        info(f"Dry run: the configuration of {inst_name!r} is valid; nothing was created.")
        return None
    callback, progress = download_progress()
    try:
        instance.create(inst_name, data, source, progress=info, download_progress=callback, text=text)
    finally:
        progress.stop()
    return inst_name


def list_requested(list_templates: bool, list_drivers: bool) -> bool:
    """``--list-templates`` / ``--list-drivers``: print the list; True when one was asked for."""
    if list_templates:
        from .. import templates

        for name, _path in templates.list_templates():
            print(name)
        return True
    if list_drivers:
        from .. import registry

        for name in registry.discover().names():
            print(name)
        return True
    return False


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


@edit_flags(create=True)
def create(
    template: str = typer.Argument(None, help=TEMPLATE_HELP, show_default=False),
    name: str = typer.Option(None, "--name", help="instance name (default: from the template)"),
    list_templates: bool = typer.Option(False, "--list-templates", help="list the templates and exit"),
    list_drivers: bool = typer.Option(False, "--list-drivers", help="list the drivers and exit"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and print the configuration; create nothing"),
    flags: EditFlags = None,  # type: ignore[assignment]
) -> None:
    """Create an instance of Lima from a template, without starting it."""
    if list_requested(list_templates, list_drivers):
        return
    locator, inst_name = resolve(template, name)
    made = make(locator, inst_name, flags, dry_run=dry_run)
    if made is not None:
        info(f"Run `lima start {made}` to start the instance.")


create.__doc__ = (create.__doc__ or "") + "\n\n" + EXAMPLES
