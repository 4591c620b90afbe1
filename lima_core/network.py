"""The guest network every driver gives an instance by default (Lima's "slirp" network)."""

from __future__ import annotations

import socket
from pathlib import Path

SLIRP_NETWORK = "192.168.5.0/24"
SLIRP_GATEWAY = "192.168.5.2"
SLIRP_DNS = "192.168.5.3"
SLIRP_GUEST_IP = "192.168.5.15"
SLIRP_NIC = "eth0"


def machine_id() -> str:
    """A stable id of this host: /etc/machine-id where it exists, else the host name."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return socket.gethostname()


def mac_address(instance_dir: str | Path) -> str:
    """The instance's NIC address: 52:55:55 plus 3 bytes of sha256(machine id + instance dir)."""
    import hashlib  # here: only this call needs it, a driver process starts faster

    digest = hashlib.sha256((machine_id() + str(instance_dir)).encode()).digest()
    return "52:55:55:" + ":".join(f"{b:02x}" for b in digest[:3])
