"""Constants and helpers shared by the end-to-end tests."""

from __future__ import annotations

import sys
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
