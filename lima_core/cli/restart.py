"""``lima restart``: stop (gracefully, or by force with -f) and start again."""

from __future__ import annotations

import typer

from ._common import info, parse_duration


def restart(
    name: str = typer.Argument("default", help="the instance", autocompletion=None),
    force: bool = typer.Option(False, "--force", "-f", help="stop the instance by force, then start it"),
    timeout: str = typer.Option("10m", "--timeout", help="how long to wait until the instance is running"),
    progress: bool = typer.Option(False, "--progress", help="show the guest's provisioning output while it starts"),
) -> None:
    """Restart a running instance (a stopped one is started)."""
    import logging

    from .. import instance
    from .start import _progress_watcher, ready

    wait = parse_duration(timeout)
    if force:
        for note in instance.stop_force(name):
            logging.getLogger("lima_core").warning("%s", note)
        info(f"Instance {name!r} was stopped forcibly.")
    elif instance.stop(name, progress=info):
        info(f"Instance {name!r} is stopped.")
    watcher = _progress_watcher(name) if progress else None
    try:
        started = instance.start(name, timeout=wait if wait > 0 else instance.DEFAULT_START_TIMEOUT, progress=info)
    finally:
        if watcher is not None:
            watcher.stop()
    if started:
        ready(name)
