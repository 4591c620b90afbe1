"""Listing the listening sockets: sock_diag, /proc/net, and the /proc/net parser the host uses over SSH."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lima_core.guestagent import ports

PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0F02A8C0:0016 0202A8C0:D431 01 00000000:00000000 02:000A2B04 00000000     0        0 3 4 0 20 4 31 10 20
"""
PROC_TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A
   2: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A
"""


def test_proc_net_listeners_in_both_byte_orders() -> None:
    assert ports.parse_proc_net(PROC_TCP, "tcp", little_endian=True) == {("tcp", "127.0.0.1", 8080),
                                                                          ("tcp", "0.0.0.0", 22)}
    assert ports.parse_proc_net(PROC_TCP6, "tcp", little_endian=True) == {
        ("tcp", "::", 22), ("tcp", "::1", 8081), ("tcp", "127.0.0.1", 8082)}  # v4-mapped given as IPv4
    # s390x prints each word big-endian
    assert ports.parse_hex_address("7F000001:1F90", little_endian=False) == ("127.0.0.1", 8080)
    assert ports.parse_hex_address("00000000000000000000000000000001:0050", little_endian=False) == ("::1", 80)
    udp = "   sl  local_address rem_address   st\n  1: 00000000:0044 00000000:0000 07\n  2: 0100007F:0035 0100007F:1234 01\n"
    assert ports.parse_proc_net(udp, "udp", little_endian=True) == {("udp", "0.0.0.0", 68)}
    with pytest.raises(ValueError):
        ports.parse_hex_address("nonsense")


def _sockets() -> tuple[list[socket.socket], set[tuple[str, str, int]], set[tuple[str, str, int]]]:
    made = []
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    tcp6 = socket.socket(socket.AF_INET6)
    tcp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    tcp6.bind(("::1", 0))
    tcp6.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    bound_only = socket.socket()  # bound, not listening: not a listener
    bound_only.bind(("127.0.0.1", 0))
    connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a client: not a listener
    connected.connect(("127.0.0.1", 9))
    made += [tcp, tcp6, udp, bound_only, connected]
    want = {("tcp", "127.0.0.1", tcp.getsockname()[1]), ("tcp", "::1", tcp6.getsockname()[1]),
            ("udp", "127.0.0.1", udp.getsockname()[1])}
    unwanted = {("tcp", "127.0.0.1", bound_only.getsockname()[1]), ("udp", "127.0.0.1", connected.getsockname()[1])}
    return made, want, unwanted


@pytest.mark.parametrize("netlink", [True, False], ids=["sock_diag", "proc"])
def test_lister_sees_listeners_come_and_go(netlink: bool) -> None:
    lister = ports.Lister(use_netlink=netlink)
    made, want, unwanted = _sockets()
    try:
        found = lister.listening()
        assert lister.how == ({"tcp": "sock_diag", "udp": "sock_diag"} if netlink else
                              {"tcp": "/proc/net", "udp": "/proc/net"})
        assert want <= found
        assert not unwanted & found
    finally:
        for s in made:
            s.close()
    assert not want & lister.listening()
    lister.close()


def test_sock_diag_and_proc_agree() -> None:
    made, _want, _ = _sockets()
    try:
        assert ports.Lister().listening() == ports.Lister(use_netlink=False).listening()
    finally:
        for s in made:
            s.close()


def test_a_kernel_without_sock_diag_is_read_from_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tcp").write_text(PROC_TCP)
    lister = ports.Lister(proc_net=str(tmp_path))

    def refused(*_args: object) -> object:
        raise OSError(93, "Protocol not supported")

    monkeypatch.setattr(ports.Lister, "_netlink", refused)
    assert lister.listening() == {("tcp", "127.0.0.1", 8080), ("tcp", "0.0.0.0", 22)}
    assert lister.how == {"tcp": "/proc/net", "udp": "/proc/net"}
