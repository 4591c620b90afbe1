"""The ``lima`` command: one module per command or command group."""

from __future__ import annotations

import typer

from .. import __version__
from . import create, delete, drivers, hostagent, info, portforwards, shell, snapshot, start, stop, template
from . import list as list_cmd
from ._common import new_app, setup_logging

app = new_app("lima: Linux virtual machines, with pluggable VM drivers (a Python Lima).")


def _version(value: bool) -> None:
    if value:
        print(f"lima version {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="debug logs, and tracebacks on errors"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    setup_logging(debug)


app.command("create")(create.create)
app.command("start")(start.start)
app.command("stop")(stop.stop)
app.command("delete")(delete.delete)
app.command("list")(list_cmd.list_)
app.command("shell", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})(shell.shell)
app.command("info")(info.info)
app.command("port-forwards")(portforwards.port_forwards)
app.command("hostagent", hidden=True)(hostagent.hostagent)
app.add_typer(snapshot.app, name="snapshot")
app.add_typer(drivers.app, name="drivers")
app.add_typer(template.app, name="template")


def main() -> None:
    app()
