"""The guest agent over Hyper-V vsock (Windows only), and the vsock port it listens on.

- Port: a random free Hyper-V vsock port, i.e. one whose service GUID is not
  registered under ``HKLM\\...\\Virtualization\\GuestCommunicationServices``.
  Off Windows there is no Hyper-V socket; the port is 0 and the host agent
  forwards the guest agent over SSH instead.
- Connection: the distro's GUID from ``HKCU\\...\\Lxss`` (the subkey whose
  ``DistributionName`` is the distro), the utility VM's id from the command
  line of ``wslhost.exe`` (``--vm-id {...}``) via PowerShell, then an
  ``AF_HYPERV`` socket to (vm id, the port's service GUID).
"""

from __future__ import annotations

import random
import re
import socket
import subprocess
import sys
from typing import Any

from lima_core.errors import DriverError

VSOCK_SERVICE_TEMPLATE = "{:08x}-facb-11e6-bd58-64006a7986d3"
GUEST_COMMUNICATION_SERVICES = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\Virtualization\GuestCommunicationServices"
LXSS = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Lxss"
VM_ID = re.compile(r"--vm-id \{(.{36})\}")
PORT_RANGE = (1024, 65535)


def service_id(port: int) -> str:
    return VSOCK_SERVICE_TEMPLATE.format(port)


def _winreg() -> Any:
    import winreg  # Windows only

    return winreg


def _subkeys(root: Any, path: str) -> list[str]:
    winreg = _winreg()
    out = []
    with winreg.OpenKey(root, path) as key:
        index = 0
        while True:
            try:
                out.append(winreg.EnumKey(key, index))
            except OSError:
                return out
            index += 1


def free_vsock_port() -> int:
    """A random port not registered as a guest communication service; 0 (the host agent forwards the guest agent
    over SSH instead) off Windows, without ``socket.AF_HYPERV`` (Python < 3.12), or on failure."""
    if sys.platform != "win32" or getattr(socket, "AF_HYPERV", None) is None:
        return 0
    try:
        used = {int(name[:8], 16) for name in _subkeys(_winreg().HKEY_LOCAL_MACHINE, GUEST_COMMUNICATION_SERVICES)
                if name.lower().endswith(VSOCK_SERVICE_TEMPLATE[6:])}
    except OSError:
        return 0
    candidates = [p for p in range(*PORT_RANGE) if p not in used]
    return random.choice(candidates) if candidates else 0


def distro_guid(distro: str) -> str:
    winreg = _winreg()
    for guid in _subkeys(winreg.HKEY_CURRENT_USER, LXSS):
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, f"{LXSS}\\{guid}") as key:
            try:
                name, _ = winreg.QueryValueEx(key, "DistributionName")
            except OSError:
                continue
        if name == distro:
            return guid.strip("{}")
    raise DriverError(f"distribution {distro} is not registered with WSL")


def vm_id(distro: str) -> str:
    guid = distro_guid(distro)
    proc = subprocess.run(["powershell.exe", "-NoProfile", "-NonInteractive", "-Command",
                           "Get-CimInstance Win32_Process -Filter \"name = 'wslhost.exe'\" | "
                           "Select-Object -ExpandProperty CommandLine"],
                          capture_output=True, text=True, timeout=30)
    for line in proc.stdout.splitlines():
        if guid.lower() in line.lower():
            match = VM_ID.search(line)
            if match:
                return match.group(1)
    raise DriverError(f"cannot find the WSL utility VM running {distro} (no wslhost.exe names {guid})")


def connect(distro: str, port: int) -> socket.socket:
    """A stream socket to the guest agent on vsock *port* of *distro*'s utility VM."""
    if sys.platform != "win32" or port == 0:
        raise DriverError("the WSL2 guest agent is reached over Hyper-V sockets, which exist only on Windows")
    family = getattr(socket, "AF_HYPERV", None)
    if family is None:
        raise DriverError("connecting to the WSL2 guest agent needs Python 3.12 or later (socket.AF_HYPERV)")
    sock = socket.socket(family, socket.SOCK_STREAM, socket.HV_PROTOCOL_RAW)  # type: ignore[attr-defined]
    try:
        sock.connect((vm_id(distro), service_id(port)))
    except OSError as exc:
        sock.close()
        raise DriverError(f"cannot connect to the guest agent of {distro}: {exc}") from exc
    return sock
