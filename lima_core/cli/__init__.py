"""The ``lima`` command: one module per command or command group."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

import typer

from .. import __version__
from . import create, delete, drivers, hostagent, info, shell, snapshot, start, stop, template
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
app.command("hostagent", hidden=True)(hostagent.hostagent)
app.add_typer(snapshot.app, name="snapshot")
app.add_typer(drivers.app, name="drivers")
app.add_typer(template.app, name="template")


def main() -> NoReturn:
    try:
        app()
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _leave(code: object) -> NoReturn:
    """Exit with *code* as SystemExit would, skipping the interpreter's finalization when nothing needs it.

    Tearing down the couple of hundred modules a command has loaded takes 50-100 ms
    after its last line of output (benchmarks B1, B4). The exit handlers (logging's)
    still run and the output is flushed; with another non-daemon thread alive, or an
    exit code that is not a number, the ordinary way out is taken.
    """
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if run_exitfuncs is None or others or not (code is None or isinstance(code, int)):
        raise SystemExit(code)
    run_exitfuncs()
    status = code or 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120  # what Python's own exit does when the output cannot be written
    os._exit(status)
