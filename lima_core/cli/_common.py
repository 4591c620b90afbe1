"""What every command shares: the error edge, logging, global flags, help layout, output helpers."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import LimaError

log = logging.getLogger("lima_core")
_state: dict[str, Any] = {"debug": False, "tty": None, "log_format": "text"}

#: Lima's logrus levels
LOG_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
              "panic": logging.CRITICAL}
LOG_FORMATS = ("text", "json")
BASIC, ADVANCED = "Basic Commands", "Advanced Commands"


class _Handler(logging.Handler):
    """``WARNING: message`` on stderr, one line per record; or logrus's JSON lines (``--log-format json``)."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if _state["log_format"] == "json":
            level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
            line = json.dumps({"level": level, "msg": message,
                               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.created))})
        else:
            prefix = {"WARNING": "WARNING: ", "ERROR": "ERROR: ", "DEBUG": "DEBUG: "}.get(record.levelname, "")
            line = f"{prefix}{message}"
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def reset() -> None:
    """A new invocation (the root callback): no flag of an earlier one in this process counts."""
    _state.update(debug=False, tty=None, log_format="text")
    logging.getLogger("lima_core").setLevel(logging.INFO)


def setup_logging(debug: bool, level: str | None = None, log_format: str | None = None) -> None:
    if log_format is not None and log_format not in LOG_FORMATS:
        raise typer.BadParameter(f"unsupported log format {log_format!r}; use text or json", param_hint="--log-format")
    if level is not None and level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"unknown log level {level!r}; use one of trace, debug, info, warn, error",
                                 param_hint="--log-level")
    _state["debug"] = _state["debug"] or debug
    _state["log_format"] = log_format or _state["log_format"]
    root = logging.getLogger("lima_core")
    root.handlers[:] = [_Handler()]
    if level is not None:
        root.setLevel(LOG_LEVELS[level.lower()])
    elif debug:
        root.setLevel(logging.DEBUG)
    root.propagate = False


def tty() -> bool:
    """Lima's --tty: prompts and editors are allowed (default: when stdout is a terminal)."""
    if _state["tty"] is not None:
        return bool(_state["tty"])
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def apply_globals(debug: bool | None = None, log_level: str | None = None, log_format: str | None = None,
                  tty_: bool | None = None, yes: bool | None = None) -> None:
    """The global flags, given before the command (``lima --debug list``) or after it (``lima list --debug``)."""
    if yes is not None and tty_ is not None:
        raise typer.BadParameter("cannot use both --tty and --yes", param_hint="--yes")
    if yes:
        _state["tty"] = False
    elif tty_ is not None:
        _state["tty"] = tty_
    if debug or log_level is not None or log_format is not None:
        setup_logging(bool(debug), log_level, log_format)


def _global_parameters() -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("debug", kw, annotation=bool, default=typer.Option(
            None, "--debug", help="debug mode: debug logs, and tracebacks on errors", show_default=False)),
        inspect.Parameter("log_level", kw, annotation=str, default=typer.Option(
            None, "--log-level", help="logging level: trace, debug, info, warn, error", show_default=False)),
        inspect.Parameter("log_format", kw, annotation=str, default=typer.Option(
            None, "--log-format", help="logging format: text (default) or json", show_default=False)),
        inspect.Parameter("tty_", kw, annotation=bool, default=typer.Option(
            None, "--tty/--no-tty", help="allow prompts and editors (default: when stdout is a terminal); "
            "--tty=false for automation", show_default=False)),
        inspect.Parameter("yes", kw, annotation=bool, default=typer.Option(
            None, "--yes", "-y", help="alias of --tty=false", show_default=False)),
    ]


GLOBAL_NAMES = ("debug", "log_level", "log_format", "tty_", "yes")


def with_globals(fn: Callable[..., Any]) -> Callable[..., Any]:
    """*fn* taking the global flags too (they are applied before it runs, and not passed to it)."""
    sig = inspect.signature(fn, eval_str=True)
    params = list(sig.parameters.values()) + _global_parameters()

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        apply_globals(**{name: kwargs.pop(name) for name in GLOBAL_NAMES})
        return fn(**kwargs)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


class LimaTyper(typer.Typer):
    """A Typer whose every command also takes the global flags, as limactl's persistent flags."""

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(name, **kwargs)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            register(with_globals(fn))
            return fn

        return decorate


class LimaGroup(TyperGroup):
    """The error edge: a LimaError becomes one line on stderr and exit code 1."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        _plain_coercion(self.get_params(ctx))
        return super().parse_args(ctx, _go_bool_syntax(self, args, group=True))

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        # The command's --help option is made on first use, from the context's help option
        # names; the command's own context inherits ours unless it sets its own.
        if cmd is not None and "help_option_names" not in (cmd.context_settings or {}):
            _plain_coercion(cmd.get_params(ctx))
        if cmd is not None and not isinstance(cmd, TyperGroup):
            rest = _go_bool_syntax(cmd, rest)
        return name, cmd, rest

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        """The commands in Lima's two groups (Basic, Advanced), then any others; aliases are not listed."""
        groups: dict[str, list[tuple[str, str]]] = {}
        commands = [(n, self.get_command(ctx, n)) for n in self.list_commands(ctx)]
        shown = [(n, c) for n, c in commands if c is not None and not c.hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(n) for n, _ in shown)
        for n, cmd in shown:
            panel = getattr(cmd, "rich_help_panel", None) or "Commands"
            groups.setdefault(panel, []).append((n, cmd.get_short_help_str(limit)))
        for panel in sorted(groups, key=lambda p: (p != BASIC, p != ADVANCED, p)):
            with formatter.section(panel):
                formatter.write_dl(groups[panel])

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
        except BrokenPipeError:  # `lima list | head`: the reader has all it wanted
            _quiet_stdout()
            raise typer.Exit(141) from None  # as a shell reports a command ended by SIGPIPE
        except OSError as exc:  # the host refused: a full disk, a permission, a vanished file
            if _state["debug"]:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            typer.echo(f"lima: {exc.strerror or exc}{where} (run with --debug for the traceback)", err=True)
            raise typer.Exit(1) from None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what the closed pipe did not
    take fails no more (it would print "Exception ignored ... BrokenPipeError")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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


@dataclasses.dataclass(frozen=True)
class Lazy:
    """A command (or command group) of the root, imported and built only when used: ``lima list`` does not
    pay for the other forty."""

    module: str
    attr: str
    panel: str | None = None
    hidden: bool = False
    settings: dict[str, Any] | None = None
    group: bool = False


class LazyGroup(LimaGroup):
    """The root group: commands come from :attr:`lazy`, built through typer's public ``get_command``."""

    lazy: dict[str, Lazy] = {}

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in self.lazy:
            cmd = self.commands[cmd_name] = _build(cmd_name, self.lazy[cmd_name])
        return cmd


def _build(name: str, spec: Lazy) -> Any:
    import importlib

    obj = getattr(importlib.import_module(spec.module), spec.attr)
    if spec.group:
        cmd = typer.main.get_command(obj)
        cmd.name = name
        cmd.hidden = spec.hidden
        cmd.rich_help_panel = spec.panel  # type: ignore[attr-defined]
        return cmd
    single = LimaTyper(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    single.command(name, rich_help_panel=spec.panel, hidden=spec.hidden, context_settings=spec.settings)(obj)
    return typer.main.get_command(single)


def _go_bool_syntax(cmd: Any, args: list[str], group: bool = False) -> list[str]:
    """Lima's (Go's) ``--flag=true`` / ``--flag=false`` for boolean flags: ``--tty=false`` becomes
    ``--no-tty``, ``--debug=true`` becomes ``--debug``. Only the command's own options are rewritten:
    not after ``--``, nor, for a command that stops at its first argument (``shell``), after that."""
    flags: dict[str, tuple[str | None, str | None]] = {}
    takes_value: set[str] = set()
    for param in cmd.params:
        opts = getattr(param, "opts", [])
        if getattr(param, "is_flag", False) and getattr(param, "is_bool_flag", True):
            secondary = getattr(param, "secondary_opts", [])
            for opt in opts:
                if opt.startswith("--"):
                    flags[opt] = (opt, secondary[0] if secondary else None)
        elif getattr(param, "param_type_name", "") == "option":
            takes_value.update(opts)
    interspersed = not group and (cmd.context_settings or {}).get("allow_interspersed_args", True)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out + args[i:]
        name, eq, value = arg.partition("=")
        if eq and name in flags and value.lower() in _TRUE | _FALSE:
            positive, negative = flags[name]
            if value.lower() in _TRUE:
                out.append(positive or name)
            elif negative:
                out.append(negative)
            i += 1
            continue
        out.append(arg)
        if arg in takes_value and i + 1 < len(args):
            out.append(args[i + 1])
            i += 2
            continue
        if not arg.startswith("-") and not interspersed:
            return out + args[i + 1:]
        i += 1
    return out


def new_app(help_text: str, **kwargs: Any) -> typer.Typer:
    return LimaTyper(cls=LimaGroup, help=help_text, no_args_is_help=True, add_completion=False,
                     pretty_exceptions_enable=False, rich_markup_mode=None, **kwargs)


def info(message: str) -> None:
    """A progress line on stderr (Lima's info level: ``--log-level warn`` hides it)."""
    log.info("%s", message)


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


def complete_instances(incomplete: str) -> list[str]:
    """Shell completion of instance names."""
    from ..dirnames import instance_names

    return [n for n in instance_names() if n.startswith(incomplete)]
