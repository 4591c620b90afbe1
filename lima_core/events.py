"""Host agent events: JSON lines in ``ha.stdout.log``, as Lima writes them.

Each line is ``{"time": ..., "status": {...}}`` with Lima's status keys
(``running``, ``degraded``, ``exiting``, ``errors``, ``sshLocalPort``, and ``portForward``:
``{type, protocol, guestAddr, hostAddr, error}`` with type ``forwarding``,
``not-forwarding``, ``stopping`` or ``failed``).
lima-core adds ``status.message``, a progress line for ``lima start``, and
while a requirement is awaited ``status.waitingFor`` (its description) and
``status.lastError`` (why its last attempt failed); Lima's readers ignore them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@dataclasses.dataclass
class Event:
    running: bool = False
    degraded: bool = False
    exiting: bool = False
    errors: list[str] = dataclasses.field(default_factory=list)
    ssh_local_port: int = 0
    message: str = ""
    waiting_for: str = ""
    last_error: str = ""
    #: Lima's portForward status: {"type", "protocol", "guestAddr", "hostAddr"[, "error"]}
    port_forward: dict[str, str] | None = None
    time: str = ""

    def to_json(self) -> dict[str, Any]:
        status: dict[str, Any] = {}
        for key, attr in (("running", "running"), ("degraded", "degraded"), ("exiting", "exiting")):
            if getattr(self, attr):
                status[key] = True
        if self.errors:
            status["errors"] = self.errors
        if self.ssh_local_port:
            status["sshLocalPort"] = self.ssh_local_port
        if self.message:
            status["message"] = self.message
        if self.waiting_for:
            status["waitingFor"] = self.waiting_for
        if self.last_error:
            status["lastError"] = self.last_error
        if self.port_forward:
            status["portForward"] = self.port_forward
        return {"time": self.time or _now(), "status": status}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        """The event a decoded line holds; ValueError or TypeError for anything else."""
        status = data.get("status") or {} if isinstance(data, dict) else None
        if not isinstance(status, dict):
            raise ValueError("not an event")
        return cls(running=bool(status.get("running")), degraded=bool(status.get("degraded")),
                   exiting=bool(status.get("exiting")), errors=[str(e) for e in status.get("errors") or []],
                   ssh_local_port=int(status.get("sshLocalPort") or 0), message=str(status.get("message") or ""),
                   waiting_for=str(status.get("waitingFor") or ""), last_error=str(status.get("lastError") or ""),
                   port_forward=status.get("portForward") or None, time=str(data.get("time") or ""))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="microseconds")


def emit(stream: IO[str], event: Event) -> None:
    stream.write(json.dumps(event.to_json()) + "\n")
    stream.flush()


def follow(path: Path, *, stop: Any = None, poll: float = 0.05) -> Iterator[Event]:
    """Yield events appended to *path* from its start; ``stop()`` true ends the wait."""
    offset = 0
    buffer = b""
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
                offset = f.tell()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            # Split on bytes, decode whole lines: a read may end inside a character, and a line that is not
            # UTF-8 (a stray byte) is skipped like any other line that is not an event.
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    try:
                        yield Event.from_json(json.loads(line))
                    except (ValueError, TypeError):
                        continue
            continue
        if stop is not None and stop():
            return
        time.sleep(poll)


def last(path: Path) -> Event | None:
    """The last event in *path*, if any."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 65536))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return Event.from_json(json.loads(line))
        except (ValueError, TypeError):
            continue
    return None
