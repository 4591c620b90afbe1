"""Whether the guest is ready: SSH answers and the boot scripts of this boot have finished."""

from __future__ import annotations

import subprocess
from typing import Any

from .. import sshutil

SSH_POLL_INTERVAL = 0.3
SSH_CONNECT_TIMEOUT = 2
BOOT_DONE_SCRIPT = "cat /run/lima-boot-done 2>/dev/null || true"


def boot_done(ssh: list[str], host: str, port: int, give_up: Any = lambda: False) -> str | None:
    """One try of the readiness test: ``/run/lima-boot-done`` over *ssh*, or None when there is no answer yet.

    ssh runs once the guest's SSH server has sent its banner on host:port, or
    once something else answers there (a refusal, a close: ssh fails as fast).
    Connections held without a word for SSH_CONNECT_TIMEOUT + SSH_POLL_INTERVAL
    mean the guest's network is not up behind QEMU's user network; an ssh
    started then would be held for its whole ConnectTimeout (which also bounds
    its wait for the banner), so the try ends there, and the next one opens new
    connections at once. ``python -m benchmarks`` times raw QEMU with this same test.
    """
    if sshutil.wait_banner(host, port, SSH_CONNECT_TIMEOUT + SSH_POLL_INTERVAL, give_up) is sshutil.Banner.SILENT:
        return None
    try:
        proc = subprocess.run([*ssh, "--", BOOT_DONE_SCRIPT], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=SSH_CONNECT_TIMEOUT + 8)
    except subprocess.TimeoutExpired:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None
