"""The host agent's DNS server (hostResolver): real UDP and TCP queries, answered as Lima's server answers."""

from __future__ import annotations

from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from lima_core.hostagent.dns import Names, Server


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server(Names("demo", {"db.internal": "10.1.2.3", "Alias.Example": "db.internal", "v6.test": "fd00::1",
                              "loop-a": "loop-b", "loop-b": "loop-a", "home": "localhost"}, ipv6=False))
    s.start()
    yield s
    s.close()


def ask(server: Server, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, "127.0.0.1", port=server.tcp_port, timeout=5)
    return dns.query.udp(query, "127.0.0.1", port=server.udp_port, timeout=5)


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in reply.answer for r in rrset)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_lima_names(server: Server, tcp: bool) -> None:
    assert addresses(ask(server, "host.lima.internal", tcp=tcp)) == ["192.168.5.2"]
    assert addresses(ask(server, "lima-demo.", tcp=tcp)) == ["192.168.5.15"]
    reply = ask(server, "HOST.lima.internal", tcp=tcp)  # names are matched without case
    assert addresses(reply) == ["192.168.5.2"] and reply.answer[0].ttl == 5


def test_hosts_entries_addresses_and_aliases(server: Server) -> None:
    assert addresses(ask(server, "db.internal")) == ["10.1.2.3"]
    assert addresses(ask(server, "alias.example")) == ["10.1.2.3"]  # an alias is followed
    assert addresses(ask(server, "home")) == ["127.0.0.1"]  # ... and resolved on the host at its end
    assert addresses(ask(server, "loop-a")) == []  # a cycle ends, it does not hang


def test_aaaa_is_empty_without_ipv6(server: Server) -> None:
    reply = ask(server, "v6.test", "AAAA")
    assert reply.rcode() == dns.rcode.NOERROR and addresses(reply) == []


def test_aaaa_with_ipv6() -> None:
    s = Server(Names("demo", {"v6.test": "fd00::1"}, ipv6=True))
    s.start()
    try:
        assert addresses(ask(s, "v6.test", "AAAA")) == ["fd00::1"]
        assert addresses(ask(s, "v6.test", "A")) == []
    finally:
        s.close()


def test_other_names_go_through_the_hosts_resolver(server: Server) -> None:
    assert addresses(ask(server, "localhost")) == ["127.0.0.1"]


def test_garbage_gets_no_answer_and_the_server_keeps_serving(server: Server) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x00\x01 not dns", ("127.0.0.1", server.udp_port))
    assert addresses(ask(server, "host.lima.internal")) == ["192.168.5.2"]
