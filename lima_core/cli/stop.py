"""``lima stop``: stop instances, gracefully or by force."""

from __future__ import annotations

import typer

from ._common import info


def stop(
    names: list[str] = typer.Argument(None, help="instances to stop (default: default)"),
    force: bool = typer.Option(False, "--force", "-f", help="kill the VM and its processes at once"),
) -> None:
    """Stop instances; a suspended one loses its saved state and boots afresh at its next start."""
    import logging

    from .. import instance, suspension

    log = logging.getLogger("lima_core")
    for name in names or ["default"]:
        if force:
            for note in instance.stop_force(name):
                log.warning("%s", note)
            suspension.discard(name, progress=info)
            info(f"Instance {name!r} was stopped forcibly.")
        elif suspension.discard(name, progress=info):
            info(f"Instance {name!r} is stopped; `lima start {name}` boots it afresh.")
        elif instance.stop(name, progress=info):
            info(f"Instance {name!r} is stopped.")
        else:
            info(f"Instance {name!r} is not running.")
