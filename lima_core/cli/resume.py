"""``lima resume``: bring suspended instances back from their saved state (lima-core's, beyond Lima)."""

from __future__ import annotations

import typer

from ._common import info, parse_duration


def resume(
    names: list[str] = typer.Argument(None, help="instances to resume (default: default)"),
    timeout: str = typer.Option("10m", "--timeout", help="how long to wait until each instance is ready"),
) -> None:
    """Resume suspended instances (`lima start` resumes one too)."""
    from .. import instance
    from .start import ready

    wait = parse_duration(timeout)
    for name in names or ["default"]:
        if not instance.start(name, timeout=wait, progress=info, resume_only=True):
            info(f"Instance {name!r} is already running.")
            continue
        ready(name)
