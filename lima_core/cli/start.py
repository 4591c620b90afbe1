"""``lima start``: start an instance (creating it from a template first if needed)."""

from __future__ import annotations

import typer

from ._common import info, parse_duration


def start(
    target: str = typer.Argument(None, help="an instance NAME, or a TEMPLATE to create one from"),
    name: str = typer.Option(None, "--name", help="name of the instance to create from TEMPLATE"),
    timeout: str = typer.Option("10m", "--timeout", help="how long to wait until the instance is ready"),
    set_: list[str] = typer.Option([], "--set", help="template edits when creating (repeatable)"),
    vm_type: str = typer.Option(None, "--vm-type", help="driver to use when creating"),
) -> None:
    """Start an instance; create it first when given a template."""
    import logging

    from .. import instance, store, templates
    from .create import download_progress, load_template

    wait = parse_duration(timeout)
    if target is None:
        target = name or "default"
    if templates.is_template_locator(target):
        locator, inst_name = target, name
    else:
        store.validate_name(target)
        inst_name = target
        locator = None
        if not store.dirnames.instance_dir(target).is_dir():
            if target != "default":
                logging.getLogger("lima_core").warning(
                    "creating %r from template:default; write this as `lima start --name %s template:default`",
                    target, target)
            locator = "template:default"
    callback, progress = download_progress()
    try:
        if locator is not None:
            inst_name, data, source, text = load_template(locator, name=inst_name, vm_type=vm_type, sets=set_,
                                                          cpus=None, memory=None, disk=None)
            if not store.dirnames.instance_dir(inst_name).is_dir():
                instance.create(inst_name, data, source, progress=info, download_progress=callback, text=text)
        result = instance.start(inst_name, timeout=wait, progress=info, download_progress=callback)
    finally:
        progress.stop()
    if not result:
        info(f"Instance {inst_name!r} is already running.")
        return
    ready(inst_name)


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
