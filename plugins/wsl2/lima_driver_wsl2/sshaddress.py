"""The distro's IP address for SSH, found from inside it in Lima's order.

1. ``bash -c "hostname -I | cut -d ' ' -f1"`` (most distributions);
2. ``sh -c "ip route get 1 | awk ..."`` (Alpine: no bash, busybox hostname);
3. ``hostname -i``, unless it answers a loopback address (some distributions
   map their host name to 127.0.1.1).

Each is a fixed argument list run with ``wsl.exe -d <distro> --exec``; only the
distro name varies, and it is its own argument. Only stdout is read: stderr
carries WSL's PATH translation noise. An answer that is not an IP address
counts as a failure (Lima would take any text from a command that succeeded).
"""

from __future__ import annotations

import ipaddress

from lima_core.errors import DriverError

from . import wsl

PROBES: tuple[tuple[str, ...], ...] = (
    ("bash", "-c", "hostname -I | cut -d ' ' -f1"),
    ("sh", "-c", "ip route get 1 | awk '{gsub(\"^.*src \",\"\"); print $1; exit}'"),
    ("hostname", "-i"),
)


def _address(text: str, allow_loopback: bool) -> str | None:
    candidate = text.strip()
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if ip.is_loopback and not allow_loopback:
        return None
    return candidate


def discover(instance_name: str) -> str:
    """The address, or DriverError naming the last failure."""
    distro = wsl.distro_name(instance_name)
    last = ""
    for probe in PROBES:
        result = wsl.in_distro(distro, *probe, timeout=30)
        if result.ok:
            address = _address(result.stdout, allow_loopback=probe[0] != "hostname")
            if address:
                return address
        last = result.describe()
    raise DriverError(f"failed to get the IP address of instance {instance_name!r}: {last}")
