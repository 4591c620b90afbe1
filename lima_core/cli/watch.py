"""``lima watch``: the events of instances (``ha.stdout.log``), as they come, until interrupted."""

from __future__ import annotations

import json
import sys

import typer

from ._common import complete_instances


def watch(names: list[str] = typer.Argument(None, help="instances (default: all)", autocompletion=complete_instances,
                                            show_default=False),
          json_: bool = typer.Option(False, "--json", help="one JSON object per event: {instance, event}")) -> None:
    """Watch events from instances: status changes (running, exiting), SSH, errors, progress.

    Runs until interrupted (Ctrl-C); only events from now on are shown."""
    import logging
    import time
    from pathlib import Path

    from .. import dirnames, events, filenames, store
    from ..limatype import STATUS_RUNNING

    log = logging.getLogger("lima_core")
    wanted = list(names or []) or dirnames.instance_names()
    if not wanted:
        log.warning("No instances found.")
        return
    files: dict[str, Path] = {}
    for name in wanted:
        inst_dir = store.existing_dir(name)
        inst = store.inspect(name, driver_status=False)
        if inst.status != STATUS_RUNNING:
            log.warning("Instance %r is not running (status: %s). Watching for events anyway...", name,
                        inst.status or "Unknown")
        files[name] = Path(inst_dir) / filenames.HOST_AGENT_STDOUT_LOG
    offsets = {name: _size(path) for name, path in files.items()}
    try:
        while True:
            for name, path in files.items():
                offsets[name] = _emit_new(name, path, offsets[name], json_, events)
            sys.stdout.flush()
            time.sleep(0.1)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _size(path) -> int:  # type: ignore[no-untyped-def]
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _emit_new(name: str, path, offset: int, as_json: bool, events) -> int:  # type: ignore[no-untyped-def]
    """Print the complete event lines of *path* after *offset*; the new offset (0 when the file was renewed)."""
    size = _size(path)
    if size < offset:  # a new start truncated the log
        offset = 0
    if size == offset:
        return offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    end = data.rfind(b"\n") + 1
    for raw in data[:end].splitlines():
        try:
            doc = json.loads(raw)
            ev = events.Event.from_json(doc)
        except (ValueError, TypeError, AttributeError):
            continue
        if as_json:
            print(json.dumps({"instance": name, "event": doc}))
        else:
            for line in describe(ev):
                print(f"{_timestamp(ev.time)} {name} | {line}")
    return offset + end


def _timestamp(text: str) -> str:
    return text.replace("T", " ")[:19] if text else ""


def describe(ev) -> list[str]:  # type: ignore[no-untyped-def]
    """What an event says, one line per fact (as limactl watch prints them)."""
    out = []
    if ev.running:
        out.append("running (degraded)" if ev.degraded else "running")
    if ev.exiting:
        out.append("exiting")
    if ev.ssh_local_port:
        out.append(f"ssh available on port {ev.ssh_local_port}")
    out += [f"error: {e}" for e in ev.errors]
    if ev.message and not ev.running:
        out.append(ev.message)
    if ev.waiting_for:
        out.append(f"waiting for {ev.waiting_for}" + (f" (last error: {ev.last_error})" if ev.last_error else ""))
    return out
