"""SSH to the guest on ``127.0.0.1:<sshLocalPort>``, as Lima's usernet gives it.

lima-driver-vz puts NIC 1 on Virtualization.framework's NAT (vmnet's shared
network, addresses by DHCP from macOS's bootpd) instead of Lima's in-process
gvisor-tap-vsock network. The host still reaches SSH at 127.0.0.1: a
:class:`Forwarder` listens there and, for each connection, dials the guest:

- over vsock port 22 when ``ssh.overVsock`` is set and the guest listens
  there (systemd 256 or later); the first success or failure is remembered,
  as Lima decides once;
- otherwise over TCP to the guest's NAT address, found in
  ``/var/db/dhcpd_leases`` by the NIC's MAC address.

A connection that cannot reach the guest yet is closed at once; ssh and the
host agent retry.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("lima_driver_vz")

DHCPD_LEASES = Path("/var/db/dhcpd_leases")
SSH_PORT = 22
DIAL_TIMEOUT = 5.0

Dialer = Callable[[], socket.socket]


def _normalize_mac(mac: str) -> str:
    """bootpd drops leading zeros ("52:55:55:a:b:c"); compare as integers."""
    try:
        return ":".join(f"{int(part, 16):02x}" for part in mac.strip().split(":"))
    except ValueError:
        return mac.strip().lower()


def lease_ip(mac: str, leases: Path = DHCPD_LEASES) -> str | None:
    """The newest address bootpd leased to *mac*, or None."""
    try:
        text = leases.read_text(errors="replace")
    except OSError:
        return None
    want = _normalize_mac(mac)
    best: tuple[int, str] | None = None
    for block in re.findall(r"\{(.*?)\}", text, flags=re.S):
        fields = dict(line.strip().split("=", 1) for line in block.splitlines() if "=" in line)
        hw = fields.get("hw_address", "")
        hw = hw.split(",", 1)[1] if "," in hw else hw
        if _normalize_mac(hw) != want or "ip_address" not in fields:
            continue
        try:
            stamp = int(fields.get("lease", "0"), 16)
        except ValueError:
            stamp = 0
        if best is None or stamp >= best[0]:
            best = (stamp, fields["ip_address"])
    return best[1] if best else None


def tcp_dialer(address: Callable[[], str | None], port: int = SSH_PORT) -> Dialer:
    def dial() -> socket.socket:
        host = address()
        if not host:
            raise OSError("the guest has no address yet")
        return socket.create_connection((host, port), timeout=DIAL_TIMEOUT)

    return dial


class PreferFirst:
    """Try *first* until it succeeds or *second* works while *first* does not; then stick to the winner."""

    def __init__(self, first: Dialer, second: Dialer, names: tuple[str, str] = ("vsock", "tcp")) -> None:
        self._dialers = (first, second)
        self._names = names
        self.choice: int | None = None

    def __call__(self) -> socket.socket:
        if self.choice is not None:
            return self._dialers[self.choice]()
        try:
            conn = self._dialers[0]()
        except OSError as first_error:
            conn = self._dialers[1]()  # raises when the guest is not reachable at all yet
            self.choice = 1
            log.info("SSH does not answer on the guest's %s; using %s (%s)", self._names[0], self._names[1],
                     first_error)
            return conn
        self.choice = 0
        log.info("SSH answers on the guest's %s; forwarding through it", self._names[0])
        return conn


class Forwarder:
    """Accept on (host, port) and pump each connection to a fresh ``dial()``."""

    def __init__(self, port: int, dial: Dialer, host: str = "127.0.0.1") -> None:
        self._dial = dial
        self._listener = socket.create_server((host, port), reuse_port=False)
        self.address = self._listener.getsockname()[:2]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"vz-ssh-forward-{port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() (close alone does not on Linux)
        with contextlib.suppress(OSError):
            self._listener.close()
        if self._thread is not threading.current_thread():
            self._thread.join(1.0)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = self._dial()
        except OSError as exc:
            log.debug("ssh forward: cannot reach the guest: %s", exc)
            client.close()
            return
        upstream.settimeout(None)
        t = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        t.start()
        _pump(client, upstream)
        t.join()
        client.close()
        upstream.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
