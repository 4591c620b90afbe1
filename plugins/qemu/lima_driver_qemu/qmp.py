"""QMP over ``<instance>/qmp.sock``, through ``qemu.qmp``'s asyncio client.

Each call opens a connection, runs its commands and closes it, in a private
event loop (``asyncio.run``), so any thread may call it: the gRPC server's
worker threads, the host agent's, a CLI. QEMU serves one QMP client at a time
on the socket, which is why nothing here keeps a connection open.

``qemu.qmp`` and asyncio are imported at the first call: a driver that only
answers ``info``, or ``inspect_status`` for stopped VMs (``lima list``), never
loads them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Lima dials QMP with a 5 s timeout.
CONNECT_TIMEOUT = 5.0
#: a plain command's reply deadline; HMP savevm/loadvm get none (they take as long as the RAM)
COMMAND_TIMEOUT = 30.0

# qemu.qmp logs every message at DEBUG (an external driver logs DEBUG to its stderr) and each
# failed connection at ERROR, also the expected ones while QEMU starts; run() reports failures.
if logging.getLogger("qemu.qmp").level == logging.NOTSET:
    logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)


class QMPUnavailable(Exception):
    """The QMP socket does not answer (QEMU is not running, or not yet)."""


class QMPCommandError(Exception):
    """QEMU answered a command with an error."""


def run(sock: Path, commands: list[tuple[str, dict[str, Any] | None]], *,
        connect_timeout: float = CONNECT_TIMEOUT, timeout: float | None = COMMAND_TIMEOUT,
        fd: int | None = None) -> list[Any]:
    """Execute *commands* in order on one connection; their return values.

    *fd* is passed to QEMU (SCM_RIGHTS) just before the first ``getfd``
    command, which names it for later commands (``migrate`` to ``fd:NAME``).

    :raises QMPUnavailable: cannot connect (or negotiate) within *connect_timeout*.
    :raises QMPCommandError: a command failed; later ones are not sent.
    """
    import asyncio

    from qemu.qmp import ExecuteError, QMPClient, QMPError

    async def session() -> list[Any]:
        client = QMPClient(f"lima-qmp:{sock.parent.name}")
        try:
            await asyncio.wait_for(client.connect(str(sock)), connect_timeout)
        except (QMPError, OSError, asyncio.TimeoutError) as exc:
            raise QMPUnavailable(f"cannot connect to {sock}: {_describe(exc)}") from None
        try:
            results = []
            pending_fd = fd
            for name, arguments in commands:
                try:
                    if name == "getfd" and pending_fd is not None:
                        client.send_fd_scm(pending_fd)
                        pending_fd = None
                    results.append(await asyncio.wait_for(client.execute(name, arguments), timeout))
                except ExecuteError as exc:
                    raise QMPCommandError(f"QMP {name}: {exc}") from None
                except (QMPError, OSError, asyncio.TimeoutError) as exc:
                    raise QMPUnavailable(f"QMP {name} on {sock}: {_describe(exc)}") from None
            return results
        finally:
            try:
                await client.disconnect()
            except (QMPError, OSError, EOFError):
                pass  # QEMU may hang up first (quit, powerdown)

    return asyncio.run(session())


def execute(sock: Path, name: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """One QMP command's return value."""
    return run(sock, [(name, arguments)], **kwargs)[0]


def hmp(sock: Path, command_line: str, timeout: float | None = None) -> str:
    """An HMP command through QMP ``human-monitor-command``; its output, ``\\r`` removed."""
    out = execute(sock, "human-monitor-command", {"command-line": command_line}, timeout=timeout)
    return str(out or "").replace("\r", "")


def wait_for_socket(sock: Path, timeout: float) -> None:
    """Wait until *sock* exists (Lima's ``waitFileExists``, polled every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while not sock.exists():
        if time.monotonic() >= deadline:
            raise QMPUnavailable(f"{sock} did not appear within {timeout:g} s")
        time.sleep(0.1)


def _describe(exc: BaseException) -> str:
    import asyncio

    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    cause = getattr(exc, "exc", None) or exc.__cause__
    text = str(exc) or type(exc).__name__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({cause})"
    return text
