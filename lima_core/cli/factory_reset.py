"""``lima factory-reset``: stop the instance by force and remove everything but its configuration."""

from __future__ import annotations

import typer

from ._common import complete_instances, info


def factory_reset(name: str = typer.Argument("default", help="the instance", autocompletion=complete_instances)) -> None:
    """Factory reset an instance of Lima: its disk and state go; lima.yaml stays (the next start
    makes a fresh disk from the image)."""
    import logging

    from .. import reset

    for note in reset.factory_reset(name):
        logging.getLogger("lima_core").warning("%s", note)
    info(f"Instance {name!r} has been factory reset")
