"""QMP over ``<inst>/qmp.sock`` with qemu.qmp, from any process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from lima_core.errors import DriverError
from qemu.qmp import QMPClient
from qemu.qmp.error import QMPError

# qemu.qmp logs every message at DEBUG; an external driver logs at DEBUG to driver.stderr.log.
logging.getLogger("qemu.qmp").setLevel(logging.WARNING)

TIMEOUT = 10.0


def execute(sock: Path, command: str, arguments: dict[str, Any] | None = None, *,
            timeout: float = TIMEOUT, expect_hangup: bool = False) -> Any:
    """Run one QMP command and return its result.

    *expect_hangup*: the command ends QEMU (``quit``), so a closed connection is success.
    """

    async def run() -> Any:
        client = QMPClient("lima-driver-microvm")
        try:
            await asyncio.wait_for(client.connect(str(sock)), timeout)
            return await asyncio.wait_for(client.execute(command, arguments), timeout)
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()

    try:
        return asyncio.run(run())
    except (QMPError, OSError, asyncio.TimeoutError, EOFError) as exc:
        if expect_hangup:
            return None
        raise DriverError(f"QMP {command} on {sock} failed: {exc or type(exc).__name__}") from exc
