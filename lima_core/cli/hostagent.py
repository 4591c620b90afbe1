"""``lima hostagent NAME`` (hidden): the background process of a running instance."""

from __future__ import annotations

import typer


def hostagent(name: str = typer.Argument(...)) -> None:
    """Run the host agent of NAME in the foreground (started by `lima start`)."""
    from .. import hostagent as ha

    raise typer.Exit(ha.run(name))
