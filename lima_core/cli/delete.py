"""``lima delete``: remove instances."""

from __future__ import annotations

import typer

from ._common import info


def delete(
    names: list[str] = typer.Argument(..., help="instances to delete"),
    force: bool = typer.Option(False, "--force", "-f", help="stop a running instance first"),
) -> None:
    """Delete instances (their disks included; a suspended one's saved state too)."""
    import logging

    from .. import instance, suspension

    log = logging.getLogger("lima_core")
    for name in names:
        was_suspended = suspension.is_suspended(name)
        notes = instance.delete(name, force=force)
        for note in notes:
            log.warning("%s", note)
        if not any("does not exist" in n for n in notes):
            info(f"Deleted {name!r}" + (" (it was suspended: its saved state went with it)." if was_suspended
                                        else "."))
