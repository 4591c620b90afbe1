"""``lima start``: start an instance (creating it from a template first if needed), with Lima's create flags."""

from __future__ import annotations

import typer

from ._common import info, parse_duration
from ._editflags import EditFlags, edit_flags, expressions
from .create import TEMPLATE_HELP, list_requested, make, resolve


@edit_flags(create=True)
def start(
    target: str = typer.Argument(None, help="an instance NAME, or a TEMPLATE to create one from: " + TEMPLATE_HELP,
                                 show_default=False),
    name: str = typer.Option(None, "--name", help="name of the instance to create from TEMPLATE"),
    list_templates: bool = typer.Option(False, "--list-templates", help="list the templates and exit"),
    list_drivers: bool = typer.Option(False, "--list-drivers", help="list the drivers and exit"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and print the configuration; change nothing"),
    foreground: bool = typer.Option(False, "--foreground", help="run the host agent in the foreground"),
    timeout: str = typer.Option("10m", "--timeout", help="how long to wait until the instance is running"),
    progress: bool = typer.Option(False, "--progress", help="show the guest's provisioning output "
                                  "(/var/log/cloud-init-output.log) while it starts"),
    flags: EditFlags = None,  # type: ignore[assignment]
) -> None:
    """Start an instance of Lima; create it first when given a template or a new name.

    \b
    Examples:
      lima start                               the instance "default" (created from template:default if new)
      lima start --name=dev template:debian    create "dev" from template:debian, and start it
      lima start dev --cpus=4                  start "dev" with 4 CPUs (lima.yaml is changed)
    """
    from .. import editing, instance

    if list_requested(list_templates, list_drivers):
        return
    wait = parse_duration(timeout)
    if wait <= 0:
        wait = instance.DEFAULT_START_TIMEOUT
    existing = _existing(target, name)
    edited = False
    if existing is None:
        locator, inst_name = resolve(target, name)
        inst_name = make(locator, inst_name, flags, dry_run=dry_run)
        if inst_name is None:
            return
    else:
        inst_name = existing
        edits = expressions(flags, new_instance=False)
        if edits:
            edit = editing.apply(inst_name, edits)
            if dry_run:
                print(edit.after, end="")
                info(f"Dry run: the edited configuration of {inst_name!r} is valid; nothing was changed.")
                return
            if edit.changed:
                editing.write(edit)
                edited = True
                info(f"Instance {inst_name!r} configuration edited")
        elif dry_run:
            print(editing.read(inst_name)[1], end="")
            info(f"Dry run: {inst_name!r} exists; nothing was changed.")
            return
    if foreground:
        if instance.start(inst_name, progress=info, foreground=True) is False:
            _already_running(inst_name)
        return
    from .create import download_progress

    callback, bar = download_progress()
    watcher = _progress_watcher(inst_name) if progress else None
    try:
        result = instance.start(inst_name, timeout=wait, progress=info, download_progress=callback)
    finally:
        bar.stop()
        if watcher is not None:
            watcher.stop()
    if not result:
        _already_running(inst_name)
        if edited:
            info(f"The edited configuration takes effect at the next start (`lima restart {inst_name}`).")
        return
    ready(inst_name)


def _existing(target: str | None, name: str | None) -> str | None:
    """The instance *target* names when it exists (a template argument never names one)."""
    import os

    from .. import dirnames, templates

    candidate = target if target is not None else (name or "default")
    if target is not None and (templates.is_template_locator(target) or os.path.exists(target)):
        return None
    if target is not None and name is not None and name != target:
        return None  # resolve() says why
    if dirnames.instance_dir(candidate).is_dir() and candidate not in ("", ".", ".."):
        return candidate
    return None


def _already_running(name: str) -> None:
    """Its host agent runs (another start may still be under way): say so; name `lima shell` only when the
    instance is Running."""
    from .. import store
    from ..limatype import STATUS_RUNNING

    inst = store.inspect(name)
    if inst.status != STATUS_RUNNING:
        info(f"The instance {name!r} already has a host agent (it is {inst.status or 'starting'}; "
             f"`lima list {name}` shows its status).")
        return
    info(f"The instance {name!r} is already running. Run `lima shell {name}` to open a shell.")


def _progress_watcher(name: str):  # type: ignore[no-untyped-def]
    from ._progress import CloudInitTail

    return CloudInitTail(name, info)


def ready(name: str) -> None:
    """READY, how to get in, and the template's message."""
    from .. import gotemplate, store
    from ..errors import ConfigError
    from ..hostagent.copytohost import host_template_values

    inst = store.inspect(name, driver_status=False)
    cfg = inst.config
    if cfg is not None and cfg.plain:
        info(f"READY. Run `ssh -F {inst.dir}/ssh.config lima-{name}` to open a shell.")
    else:
        info(f"READY. Run `lima shell {name}` to open a shell in the instance.")
    if cfg is not None and cfg.message:
        try:
            message = gotemplate.expand(cfg.message, host_template_values(inst), "message")
        except ConfigError:
            message = cfg.message
        info("------\n" + message.rstrip() + "\n------")
