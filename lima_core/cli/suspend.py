"""``lima suspend``: save running instances' VMs to disk and end them (lima-core's, beyond Lima)."""

from __future__ import annotations

import typer

from ._common import info


def suspend(names: list[str] = typer.Argument(None, help="instances to suspend (default: default)")) -> None:
    """Suspend instances: save each VM's whole state in its instance directory; `lima resume` brings it back."""
    from .. import suspension
    from ..units import human_size

    for name in names or ["default"]:
        saved = suspension.suspend(name, progress=info)
        if saved is None:
            info(f"Instance {name!r} is already suspended.")
            continue
        size = f"{human_size(saved.state_bytes)} of state" if saved.state_bytes else "its state"
        info(f"Instance {name!r} is suspended ({size} saved in {saved.milliseconds / 1000:.1f} s). "
             f"Run `lima resume {name}` to bring it back.")
