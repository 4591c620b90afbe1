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

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        _plain_coercion(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        # The command's --help option is made on first use, from the context's help option
        # names; the command's own context inherits ours unless it sets its own.
        if cmd is not None and "help_option_names" not in (cmd.context_settings or {}):
            _plain_coercion(cmd.get_params(ctx))
        return name, cmd, rest

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
        except OSError as exc:  # the host refused: a full disk, a permission, a vanished file
            if _state["debug"]:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            typer.echo(f"lima: {exc.strerror or exc}{where} (run with --debug for the traceback)", err=True)
            raise typer.Exit(1) from None


# -- parameter coercion without pydantic ---------------------------------------------------------
#
# typer 0.29 converts every parameter value through a pydantic TypeAdapter, built when the
# command runs: importing pydantic and building the schema costs about as much as importing
# typer itself, on every command (docs/benchmarks.md, B4). Our parameters are plain strings,
# lists of strings and flags, which need no validation; for exactly those, the command's
# parameters get a converter of their own before parsing. Anything else (numbers, paths)
# keeps typer's. On a typer without this machinery nothing changes.

try:
    # typer's private coercion API: pyproject.toml pins typer to the 0.29 series it was written
    # for, and tests/cli/test_startup_imports.py fails if a command imports pydantic again.
    from typer._coercion import RuntimeParam as _RuntimeParam
except ImportError:  # another typer: it converts as it always did
    _RuntimeParam = None


_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "on"}, {"0", "false", "f", "no", "n", "off", ""}


def _as_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _as_str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise typer.BadParameter(f"{value!r} is not a valid boolean")


if _RuntimeParam is not None:
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class _PlainParam(_RuntimeParam):  # type: ignore[misc, valid-type]
        many: bool = False

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            convert = _as_bool if self.annotation is bool else _as_str
            if self.many:
                return [convert(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            return convert(value)


def _plain_coercion(params: list[Any]) -> None:
    if _RuntimeParam is None:
        return
    for param in params:
        desc = getattr(param, "type_descriptor", None)
        if desc is None or getattr(param, "_runtime_param", False) is not None:
            continue
        info = desc.parameter_info
        if info.parser is not None or desc.file_annotation is not None:
            continue
        if desc.annotation in (str, bool):
            param._runtime_param = _PlainParam(parameter_info=info, annotation=desc.annotation)
        elif desc.annotation == list[str]:
            param._runtime_param = _PlainParam(parameter_info=info, annotation=list[str], many=True)


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
