"""Constants and helpers shared by the end-to-end tests."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GUEST = REPO / ".cache" / "test-guest" / "current"
TEMPLATE = REPO / "templates" / "test-guest.yaml"
BIN = Path(sys.executable).parent


def qemu_processes(lima_home: str) -> list[Any]:
    import psutil

    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if lima_home in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(cmd)
    return out


def status(lima: Any, name: str) -> dict:
    """The instance as `lima list --format json` shows it."""
    return json.loads(lima("list", "--format", "json", name).stdout)


def wait_gone(lima_home: str, timeout: float = 15) -> list[str]:
    """Wait up to *timeout* s for the instance's QEMU processes to end; those still alive."""
    deadline = time.monotonic() + timeout
    while (left := qemu_processes(lima_home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
