"""The guest's listening sockets: TCP in LISTEN, UDP bound and unconnected, over IPv4 and IPv6.

:class:`Lister` asks the kernel through netlink ``NETLINK_SOCK_DIAG`` (as
Lima's agent does), with the state filter applied in the kernel, so one
listing costs four small round trips whatever the number of connections. A
kernel that refuses (no ``inet_diag``, or ``udp_diag`` missing) is read from
``/proc/net/{tcp,tcp6,udp,udp6}`` instead. :func:`parse_proc_net` is also
what the host agent uses when it reads those files over SSH.

A listener is a tuple ``(proto, ip, port)``: ``("tcp", "127.0.0.1", 8080)``,
``("udp", "::", 5353)``. An IPv4-mapped IPv6 address is given as IPv4.
"""

import errno
import os
import socket
import struct
import sys

TCP_LISTEN = 10
#: an unconnected UDP socket is in TCP_CLOSE
UDP_UNCONNECTED = 7
STATES = {"tcp": TCP_LISTEN, "udp": UDP_UNCONNECTED}
PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
FAMILIES = ((socket.AF_INET, ""), (socket.AF_INET6, "6"))

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
_NLMSGHDR = struct.Struct("=IHHII")
#: inet_diag_req_v2 without its inet_diag_sockid (48 zero bytes)
_REQ = struct.Struct("=BBBBI")
_SPORT = struct.Struct(">H")


#: the sequence number of every request (one dump at a time on the socket)
_SEQ = 1


def _request(proto, family):
    body = _REQ.pack(family, PROTOCOLS[proto], 0, 0, 1 << STATES[proto]) + bytes(48)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, _SEQ,
                          0) + body


_REQUESTS = {(proto, family): _request(proto, family) for proto in PROTOCOLS for family, _ in FAMILIES}


def _ip(family, raw):
    ip = socket.inet_ntop(family, raw)
    if family == socket.AF_INET6 and ip.startswith("::ffff:") and "." in ip:
        return ip[7:]
    return ip


class Lister(object):
    """Lists the listening sockets, through sock_diag while the kernel answers it, else from /proc/net."""

    def __init__(self, proc_net="/proc/net", use_netlink=True):
        self.proc_net = proc_net
        self._sock = None
        #: "sock_diag" or "/proc/net" (per protocol, the way the last listing was made)
        self.how = {"tcp": "sock_diag" if use_netlink else "/proc/net",
                    "udp": "sock_diag" if use_netlink else "/proc/net"}

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def listening(self):
        """The current set of listeners."""
        out = set()
        for proto in ("tcp", "udp"):
            if self.how[proto] == "sock_diag":
                try:
                    out |= self._diag(proto)
                    continue
                except OSError:
                    self.how[proto] = "/proc/net"
                    self.close()
            out |= self._proc(proto)
        return out

    # -- netlink ---------------------------------------------------------------------------

    def _netlink(self):
        if self._sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
            sock.settimeout(2.0)
            self._sock = sock
        return self._sock

    def _diag(self, proto):
        out = set()
        sock = self._netlink()
        for family, _suffix in FAMILIES:
            sock.send(_REQUESTS[proto, family])
            out |= self._receive(sock, proto, family, _SEQ)
        return out

    def _receive(self, sock, proto, family, seq):
        out = set()
        addr_len = 4 if family == socket.AF_INET else 16
        while True:
            data = sock.recv(65536)
            pos = 0
            while pos + _NLMSGHDR.size <= len(data):
                length, kind, _flags, got_seq, _pid = _NLMSGHDR.unpack_from(data, pos)
                if length < _NLMSGHDR.size:
                    raise OSError(errno.EPROTO, "bad netlink message")
                body = pos + _NLMSGHDR.size
                if got_seq == seq:
                    if kind == NLMSG_DONE:
                        return out
                    if kind == NLMSG_ERROR:
                        code = struct.unpack_from("=i", data, body)[0]
                        if code:
                            raise OSError(-code, os.strerror(-code))
                        return out
                    fam, state = data[body], data[body + 1]
                    port = _SPORT.unpack_from(data, body + 4)[0]
                    if fam == family and state == STATES[proto]:
                        out.add((proto, _ip(family, data[body + 8:body + 8 + addr_len]), port))
                pos += (length + 3) & ~3

    # -- /proc/net ------------------------------------------------------------------------

    def _proc(self, proto):
        out = set()
        for _family, suffix in FAMILIES:
            try:
                with open(os.path.join(self.proc_net, proto + suffix)) as f:
                    text = f.read()
            except OSError:
                continue
            out |= parse_proc_net(text, proto)
        return out


def parse_proc_net(text, proto, little_endian=None):
    """The listeners in the text of /proc/net/<proto>[6] (the state column picks them).

    *little_endian*: the byte order of the machine that wrote the text (the
    kernel prints each 32-bit word of an address in its own order); this
    machine's by default.
    """
    out = set()
    state = "%02X" % STATES[proto]
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != state or ":" not in fields[1]:
            continue
        try:
            out.add((proto,) + parse_hex_address(fields[1], little_endian))
        except ValueError:
            continue
    return out


def parse_hex_address(text, little_endian=None):
    """``("127.0.0.1", 8080)`` from /proc/net's ``0100007F:1F90`` (or 32 hex digits for IPv6)."""
    if little_endian is None:
        little_endian = sys.byteorder == "little"
    hex_ip, _, hex_port = text.partition(":")
    if len(hex_ip) not in (8, 32) or len(hex_port) != 4:
        raise ValueError("not a /proc/net address: %r" % text)
    raw = bytes.fromhex(hex_ip)
    if little_endian:
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return _ip(family, raw), int(hex_port, 16)
