"""What every command shares: the error edge, logging, output helpers."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import LimaError

log = logging.getLogger("lima_core")
_state = {"debug": False}


class _Handler(logging.Handler):
    """``WARNING: message`` on stderr, as one line per record."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = {"WARNING": "WARNING: ", "ERROR": "ERROR: ", "DEBUG": "DEBUG: "}.get(record.levelname, "")
        try:
            sys.stderr.write(f"{prefix}{record.getMessage()}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def setup_logging(debug: bool) -> None:
    _state["debug"] = debug
    root = logging.getLogger("lima_core")
    root.handlers[:] = [_Handler()]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False


class LimaGroup(TyperGroup):
    """The error edge: a LimaError becomes one line on stderr and exit code 1."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LimaError as exc:
            if _state["debug"]:
                raise
            typer.echo(f"lima: {exc.message}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("lima: interrupted; the instance is left as it was at that moment "
                       "(`lima list` shows its state)", err=True)
            raise typer.Exit(130) from None


def new_app(help_text: str, **kwargs: Any) -> typer.Typer:
    return typer.Typer(cls=LimaGroup, help=help_text, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode=None, **kwargs)


def info(message: str) -> None:
    typer.echo(message, err=True)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


def parse_duration(text: str) -> float:
    """Go durations ("10m", "1h30m", "45s") or plain seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match[1]) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[match[2]]
        pos = match.end()
    if pos != len(text) or not text:
        raise LimaError(f"invalid duration {text!r}; write it like 10m, 90s or 1h30m")
    return total


def choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise LimaError(f"invalid {what} {value!r}; use one of {', '.join(allowed)}")
    return value
