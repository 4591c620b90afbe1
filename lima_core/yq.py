"""Expressions over YAML data: ``--set``, ``--yq``, ``--filter``, ``edit --set``.

Lima evaluates these with yq (v4). lima-core evaluates them with libjq, through the
``jq`` bindings on PyPI: a maintained library with wheels for every platform, whose
language is the one yq's was modelled on. The expressions Lima documents and builds
from its flags (``.cpus = 2 | .memory = "4GiB"``, ``.mounts[].writable = true``,
``.dns += ["1.1.1.1"] | .dns |= unique``, ``.mounts |= unique_by(.location)``,
``select(.status == "Running")``, ``del(.x)``) mean the same in both; yq's
YAML-only operators (comments, tags, anchors) do not exist here.

Lima's restrictions apply (``limactl help yq-restrictions``): an expression cannot
read the host's environment or files, or stop the process. On top of that it runs in
a child process with a time and memory budget, so an expression that never ends
(``repeat(.)``) is an error, not a hung ``lima``.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import time
from collections.abc import Callable
from typing import Any

from .errors import ConfigError

#: operators an expression may not use, and why (Lima refuses env, load, load_str and system)
FORBIDDEN = {
    "env": "reads the host's environment",
    "$ENV": "reads the host's environment",
    "input": "reads further input",
    "inputs": "reads further input",
    "input_filename": "reads further input",
    "include": "reads files",
    "import": "reads files",
    "modulemeta": "reads files",
    "get_search_list": "reads the module search path",
    "get_prog_origin": "reads the module search path",
    "get_jq_origin": "reads the module search path",
    "$__prog_args": "reads the program's arguments",
    "halt": "stops the process",
    "halt_error": "stops the process",
}
#: how long one evaluation may run, and how much memory it may take
TIMEOUT = 10.0
MEMORY_LIMIT = 1 << 30
#: an expression yielding more results than this for one input is refused (``range(1e9)``)
MAX_RESULTS = 10_000

_IDENT = re.compile(r"\$?[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*")


def _code_words(expr: str) -> list[tuple[str, str, str]]:
    """(word, the code character before it, the one after it) for each identifier outside string
    literals and comments; the code inside ``\\(...)`` interpolations counts as code."""
    words: list[tuple[str, str, str]] = []
    code: list[str] = []  # the code characters seen so far, strings blanked
    i, n = 0, len(expr)
    # a stack of what we are in: "code" (with the paren depth of an interpolation) or "string"
    stack: list[list[Any]] = [["code", 0]]
    while i < n:
        c = expr[i]
        state = stack[-1]
        if state[0] == "string":
            if c == "\\" and i + 1 < n and expr[i + 1] == "(":
                stack.append(["code", 1])
                code.append(" ")
                i += 2
                continue
            if c == "\\":
                i += 2
                continue
            if c == '"':
                stack.pop()
            code.append(" ")
            i += 1
            continue
        if c == "#":
            while i < n and expr[i] != "\n":
                i += 1
            continue
        if c == '"':
            stack.append(["string"])
            code.append(" ")
            i += 1
            continue
        if c == "(" and len(stack) > 1:
            state[1] += 1
        elif c == ")" and len(stack) > 1:
            state[1] -= 1
            if state[1] == 0:
                stack.pop()
                code.append(" ")
                i += 1
                continue
        match = _IDENT.match(expr, i)
        if match and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_")):
            before = "".join(code).rstrip()[-1:]
            rest = expr[match.end():].lstrip()
            words.append((match[0], before, rest[:1]))
            code.append(match[0])
            i = match.end()
            continue
        code.append(c)
        i += 1
    return words


def check(expr: str, what: str) -> None:
    """ConfigError naming the first forbidden operator *expr* uses."""
    for word, before, after in _code_words(expr):
        if before == "." or after == ":" and not word.startswith("$"):
            continue  # a field (.env) or an object key ({env: 1})
        if word in FORBIDDEN:
            raise ConfigError(f"{what}: `{word}` is not allowed in lima's expressions: it {FORBIDDEN[word]} "
                              "(as in Lima, expressions cannot read the host's environment or files)")


def _compile(expr: str, what: str) -> Any:
    import jq

    check(expr, what)
    try:
        return jq.compile(expr)
    except ValueError as exc:
        raise ConfigError(f"{what}: not a valid expression: {_jq_message(exc)}") from None


def _jq_message(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("jq: ")
             or ln.strip().startswith("jq: error")]
    text = " ".join(ln.removeprefix("jq: error: ") for ln in lines if not ln.endswith("compile error"))
    return text or str(exc).strip()


def evaluate(expr: str, inputs: list[Any], what: str) -> list[list[Any]]:
    """The results of *expr* for each of *inputs* (each input may give any number of results)."""
    program = _compile(expr, what)
    if not hasattr(os, "fork"):
        return _run(program, inputs, what)
    return _in_child(lambda: _run(program, inputs, what), what)


def apply_all(edits: list[tuple[str, str]], data: dict[str, Any]) -> dict[str, Any]:
    """*data* edited by each ``(what, expression)`` of *edits* in turn (see :func:`apply`); an error
    names the *what* (e.g. ``--set '.cpus = 2'`` or ``--cpus``) whose expression failed."""
    if not edits:
        return data
    programs = [(_compile(expr, what), what) for what, expr in edits]

    def chain() -> dict[str, Any]:
        doc = _plain(data)
        for program, what in programs:
            doc = _one_mapping(_run(program, [doc], what)[0], what)
        return doc

    return chain() if not hasattr(os, "fork") else _in_child(chain, "the edits")


def _run(program: Any, inputs: list[Any], what: str) -> list[list[Any]]:
    out: list[list[Any]] = []
    for value in inputs:
        results: list[Any] = []
        try:
            for result in program.input_value(value):
                results.append(result)
                if len(results) > MAX_RESULTS:
                    raise ConfigError(f"{what}: the expression gives more than {MAX_RESULTS} results")
        except ValueError as exc:
            raise ConfigError(f"{what}: {_jq_message(exc)}") from None
        out.append(results)
    return out


def _in_child(work: Callable[[], Any], what: str) -> Any:
    """*work*() in a forked child that has :data:`TIMEOUT` seconds and :data:`MEMORY_LIMIT` bytes:
    libjq holds the interpreter while it runs, so in-process it could be neither interrupted nor
    timed out."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: evaluate, write the answer, leave without running any cleanup
        try:
            os.close(read_fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)  # libjq reports an allocation failure on stderr; the parent says it
            try:
                import resource

                resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
            except (ImportError, ValueError, OSError):
                pass
            try:
                answer = {"ok": work()}
            except ConfigError as exc:
                answer = {"error": exc.message}
            except MemoryError:
                answer = {"error": f"{what}: the expression needs more than {MEMORY_LIMIT >> 20} MiB"}
            data = json.dumps(answer, default=str).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise ConfigError(f"{what}: the expression did not finish within {TIMEOUT:g} s")
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        raise ConfigError(f"{what}: the expression ran out of memory (the limit is {MEMORY_LIMIT >> 20} MiB)") from None
    if "error" in answer:
        raise ConfigError(answer["error"])
    return answer["ok"]


def apply(expr: str, data: dict[str, Any], what: str) -> dict[str, Any]:
    """*data* edited by *expr*, which must give exactly one mapping (as ``--set`` needs)."""
    return _one_mapping(evaluate(expr, [_plain(data)], what)[0], what)


def _one_mapping(results: list[Any], what: str) -> dict[str, Any]:
    if len(results) != 1:
        raise ConfigError(f"{what}: the expression gives {len(results)} results; it must give one (the edited "
                          "document), e.g. '.cpus = 2 | .memory = \"4GiB\"'")
    if not isinstance(results[0], dict):
        raise ConfigError(f"{what}: the expression gives {_kind(results[0])}, not a mapping; write an assignment "
                          "such as '.cpus = 2'")
    return results[0]


def join(exprs: list[str]) -> str:
    """One expression applying *exprs* in order (Lima's ``yqutil.Join``)."""
    return " | ".join(f"({e})" for e in exprs)


def _plain(data: Any) -> Any:
    """*data* as JSON has it (YAML timestamps and the like become strings)."""
    return json.loads(json.dumps(data, default=str))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__)
