"""The ``lima`` command: limactl's commands, one module per command or command group."""

from __future__ import annotations

import typer

from .. import __version__
from ._common import ADVANCED, BASIC, Lazy, LazyGroup, LimaTyper, apply_globals, reset, setup_logging

app = LimaTyper(
    cls=LazyGroup, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]}, add_completion=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    help="Lima: Linux virtual machines, with pluggable VM drivers (lima-core, a Python Lima).",
    epilog="Examples:\n\n\b\n"
           "  Start the default instance:      lima start\n"
           "  Open a shell in it:              lima shell default\n"
           "  Run a command there:             lima shell default uname -a\n"
           "  Stop the default instance:       lima stop\n"
           "  See the templates:               lima start --list-templates\n"
           "  Shell completion (bash):         source <(lima completion bash)")


def _version(value: bool) -> None:
    if value:
        print(f"lima version {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="debug mode: debug logs, and tracebacks on errors"),
    log_level: str = typer.Option(None, "--log-level", help="logging level: trace, debug, info, warn, error"),
    log_format: str = typer.Option(None, "--log-format", help="logging format: text (default) or json"),
    tty_: bool = typer.Option(None, "--tty/--no-tty", show_default=False,
                              help="allow prompts and editors (default: when stdout is a terminal)"),
    yes: bool = typer.Option(None, "--yes", "-y", show_default=False, help="alias of --tty=false"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    reset()
    setup_logging(debug)
    apply_globals(log_level=log_level, log_format=log_format, tty_=tty_, yes=yes)


_SHELL_LIKE = {"allow_interspersed_args": False, "ignore_unknown_options": True}
#: (name, module, function, group, aliases, context settings): the groups and aliases are Lima's
COMMANDS = (
    ("create", "create", "create", BASIC, (), None),
    ("start", "start", "start", BASIC, (), None),
    ("stop", "stop", "stop", BASIC, (), None),
    ("restart", "restart", "restart", BASIC, (), None),
    ("suspend", "suspend", "suspend", BASIC, (), None),  # lima-core's, beyond Lima
    ("resume", "resume", "resume", BASIC, (), None),
    ("shell", "shell", "shell", BASIC, (), _SHELL_LIKE),
    ("copy", "copy", "copy", BASIC, ("cp",), None),
    ("list", "list", "list_", BASIC, ("ls",), None),
    ("delete", "delete", "delete", BASIC, ("remove", "rm"), None),
    ("edit", "edit", "edit", BASIC, (), None),
    ("info", "info", "info", ADVANCED, (), None),
    ("validate", "validate", "validate", ADVANCED, (), None),
    ("prune", "prune", "prune", ADVANCED, (), None),
    ("show-ssh", "show_ssh", "show_ssh", ADVANCED, (), None),
    ("factory-reset", "factory_reset", "factory_reset", ADVANCED, (), None),
    ("protect", "protect", "protect", ADVANCED, (), None),
    ("unprotect", "protect", "unprotect", ADVANCED, (), None),
    ("clone", "clone", "clone", ADVANCED, (), None),
    ("rename", "clone", "rename", ADVANCED, (), None),
    ("tunnel", "tunnel", "tunnel", ADVANCED, (), None),
    ("port-forwards", "portforwards", "port_forwards", ADVANCED, (), None),  # lima-core's, beyond Lima
    ("watch", "watch", "watch", ADVANCED, (), None),
    ("completion", "completion", "completion", ADVANCED, (), None),
    ("hostagent", "hostagent", "hostagent", None, (), None),  # hidden: `lima start` runs it
)
GROUPS = (
    ("snapshot", "snapshot", ADVANCED),
    ("disk", "disk", ADVANCED),
    ("template", "template", ADVANCED),
    ("drivers", "drivers", ADVANCED),
)


def _table() -> dict[str, Lazy]:
    out: dict[str, Lazy] = {}
    for name, module, attr, panel, aliases, settings in COMMANDS:
        hidden = panel is None
        out[name] = Lazy(f"{__name__}.{module}", attr, panel, hidden, settings)
        for alias in aliases:
            out[alias] = Lazy(f"{__name__}.{module}", attr, None, True, settings)
    for name, module, panel in GROUPS:
        out[name] = Lazy(f"{__name__}.{module}", "app", panel, group=True)
    return out


LazyGroup.lazy = _table()


def main() -> None:
    app(prog_name="lima")
