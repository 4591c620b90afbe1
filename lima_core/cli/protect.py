"""``lima protect`` / ``lima unprotect``: refuse (or allow again) `lima delete` of an instance."""

from __future__ import annotations

import logging

import typer

from ._common import complete_instances, info

log = logging.getLogger("lima_core")


def protect(names: list[str] = typer.Argument(..., help="instances", autocompletion=complete_instances)) -> None:
    """Protect instances from accidental removal by `lima delete` (not from rm, a file manager, ...)."""
    _set(names, True)


def unprotect(names: list[str] = typer.Argument(..., help="instances", autocompletion=complete_instances)) -> None:
    """Unprotect instances: `lima delete` removes them again."""
    _set(names, False)


def _set(names: list[str], on: bool) -> None:
    from .. import reset
    from ..errors import LimaError

    failed = []
    for name in names:
        try:
            changed = reset.set_protected(name, on)
        except LimaError as exc:
            log.error("%s", exc.message)
            failed.append(name)
            continue
        if not changed:
            log.warning("instance %r is %s protected; skipping", name, "already" if on else "not")
        else:
            info(f"{'Protected' if on else 'Unprotected'} {name!r}")
    if failed:
        raise typer.Exit(1)
