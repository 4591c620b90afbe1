"""The host agent's DNS server (``hostResolver``), as Lima's: the guest's resolver, answered from the host.

It listens on 127.0.0.1, UDP and TCP, on ports of its own; lima.env tells the
guest (``LIMA_CIDATA_{UDP,TCP}_DNS_LOCAL_PORT``) and the boot script
``09-host-dns-setup.sh`` sends the queries for the user network's DNS address
there (QEMU's user network maps the gateway address to the host's loopback).

Answers: ``host.lima.internal`` is the gateway, ``lima-<name>`` the guest's
address, ``hostResolver.hosts`` entries an address or an alias followed and
resolved on the host; other A and AAAA queries go through the host's own
resolver (so /etc/hosts, VPN and mDNS setups work), and everything else to the
servers of the host's /etc/resolv.conf. AAAA answers are empty unless
``hostResolver.ipv6``. Answers live 5 s; a UDP answer over 512 bytes is
truncated, for the client to ask again over TCP.

dnspython (imported in the serving threads, after the VM has started) parses
and builds the messages.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import struct
import threading
from collections.abc import Mapping
from typing import Any

from ..network import SLIRP_GATEWAY, SLIRP_GUEST_IP

log = logging.getLogger("lima_core.hostagent")

TTL = 5
UDP_LIMIT = 512
FALLBACK_SERVERS = ("8.8.8.8", "1.1.1.1")


class Names:
    """What the server answers itself: name (lower case, no trailing dot) -> address or alias."""

    def __init__(self, instance: str, hosts: Mapping[str, str] | None, ipv6: bool) -> None:
        self.static: dict[str, str] = {"host.lima.internal": SLIRP_GATEWAY, f"lima-{instance}": SLIRP_GUEST_IP}
        self.static.update({k.lower().rstrip("."): v for k, v in (hosts or {}).items()})
        self.ipv6 = ipv6

    def lookup(self, name: str, family: int) -> list[str] | None:
        """Addresses of *name* (AF_INET or AF_INET6), following aliases; None when *name* is not ours."""
        name = name.lower().rstrip(".")
        if name not in self.static:
            return None
        seen: set[str] = set()
        while name in self.static and name not in seen:  # a cycle stops at the second visit
            seen.add(name)
            value = self.static[name]
            if _is_ip(value):
                return [value] if _family(value) == family else []
            name = value.lower().rstrip(".")
        return resolve_on_host(name, family)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def resolve_on_host(name: str, family: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    out: list[str] = []
    for info in infos:
        if info[4][0] not in out:
            out.append(info[4][0])
    return out


def upstream_servers() -> list[str]:
    servers = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith("127."):
                    servers.append(parts[1])
    except OSError:
        pass
    return servers or list(FALLBACK_SERVERS)


class Server:
    """UDP and TCP on 127.0.0.1, bound at once (lima.env needs the ports); served from :meth:`start`."""

    def __init__(self, names: Names, udp_port: int = 0, tcp_port: int = 0) -> None:
        """Bound to *udp_port* and *tcp_port* when given (a resumed guest's redirect points at them) and
        free, else to ports of the system's choosing."""
        self.names = names
        self.udp = _bound(socket.SOCK_DGRAM, udp_port)
        self.tcp = _bound(socket.SOCK_STREAM, tcp_port)
        self.tcp.listen(16)
        self.udp_port = self.udp.getsockname()[1]
        self.tcp_port = self.tcp.getsockname()[1]
        self._closed = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._serve_udp, name="dns-udp", daemon=True).start()
        threading.Thread(target=self._serve_tcp, name="dns-tcp", daemon=True).start()
        log.info("DNS server for the guest on 127.0.0.1 (udp %d, tcp %d)", self.udp_port, self.tcp_port)

    def close(self) -> None:
        self._closed.set()
        for s in (self.udp, self.tcp):
            with contextlib.suppress(OSError):
                s.close()

    def _serve_udp(self) -> None:
        while not self._closed.is_set():
            try:
                data, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            threading.Thread(target=self._answer_udp, args=(data, peer), daemon=True).start()

    def _answer_udp(self, data: bytes, peer: Any) -> None:
        reply = self.answer(data, tcp=False)
        if reply is not None:
            with contextlib.suppress(OSError):
                self.udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._answer_tcp, args=(conn,), daemon=True).start()

    def _answer_tcp(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError, struct.error):
            conn.settimeout(10)
            while True:
                head = _recv_exactly(conn, 2)
                if not head:
                    return
                data = _recv_exactly(conn, struct.unpack("!H", head)[0])
                reply = self.answer(data, tcp=True)
                if reply is None:
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    def answer(self, data: bytes, tcp: bool) -> bytes | None:
        """The reply to one query message, or None for something that is not one."""
        import dns.exception
        import dns.flags
        import dns.message
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype

        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        q = query.question[0]
        name = q.name.to_text()
        if q.rdclass == dns.rdataclass.IN and q.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            family = socket.AF_INET if q.rdtype == dns.rdatatype.A else socket.AF_INET6
            addresses = self.names.lookup(name, family)
            if addresses is None:
                if family == socket.AF_INET6 and not self.names.ipv6:
                    addresses = []
                else:
                    addresses = resolve_on_host(name.rstrip("."), family)
                    if not addresses:
                        return self._forward(query, data, tcp)
            elif family == socket.AF_INET6 and not self.names.ipv6:
                addresses = []
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.RA
            if addresses:
                rrset = reply.find_rrset(reply.answer, q.name, dns.rdataclass.IN, q.rdtype, create=True)
                rrset.update_ttl(TTL)
                for address in addresses:
                    rrset.add(dns.rdata.from_text(dns.rdataclass.IN, q.rdtype, address))
            return _to_wire(reply, tcp)
        return self._forward(query, data, tcp)

    def _forward(self, query: Any, data: bytes, tcp: bool) -> bytes:
        """Ask the host's upstream servers (UDP, then TCP), or answer SERVFAIL."""
        import dns.exception
        import dns.flags
        import dns.message
        import dns.query
        import dns.rcode

        for server in upstream_servers():
            try:
                response = dns.query.udp(query, server, timeout=2)
                if response.flags & dns.flags.TC:
                    response = dns.query.tcp(query, server, timeout=4)
                return _to_wire(response, tcp)
            except (dns.exception.DNSException, OSError):
                continue
        reply = dns.message.make_response(query)
        reply.set_rcode(dns.rcode.SERVFAIL)
        return _to_wire(reply, tcp)


def _bound(kind: int, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    if kind == socket.SOCK_STREAM:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        if port == 0:
            raise
        log.warning("DNS port %d is taken; the guest's resolver needs a reboot to find the new one", port)
        s.bind(("127.0.0.1", 0))
    return s


def _to_wire(message: Any, tcp: bool) -> bytes:
    import dns.flags

    wire = message.to_wire(max_size=65535)
    if not tcp and len(wire) > UDP_LIMIT:
        message.answer.clear()
        message.authority.clear()
        message.additional.clear()
        message.flags |= dns.flags.TC
        wire = message.to_wire()
    return wire


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf

