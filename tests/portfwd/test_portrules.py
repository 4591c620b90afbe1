"""Lima's rule list and first match (reference §5.1-5.3, 5.7), one case per rule of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lima_core import guestfields
from lima_core.errors import ConfigError
from lima_core.hostagent import portrules
from lima_core.limatype import LimaYAML


def rules(*port_forwards: dict, ssh_port: int = 60022, tmp: Path = Path("/inst")) -> list[portrules.Rule]:
    cfg = LimaYAML.from_json({"portForwards": list(port_forwards)})
    guestfields.fill_defaults(cfg)
    return portrules.resolve(cfg, ssh_port, tmp, {"Name": "x", "UID": 1000, "User": "u", "Home": "/home/u",
                                                  "Hostname": "lima-x", "Param": {}},
                             {"Home": "/hh", "Dir": str(tmp), "Name": "x", "UID": 1000, "User": "u", "Param": {}})


def host(rs: list[portrules.Rule], proto: str, ip: str, port: int) -> str:
    return portrules.match(rs, proto, ip, port).host


def test_the_defaults_forward_loopback_and_any_address_to_the_hosts_loopback() -> None:
    rs = rules()
    assert host(rs, "tcp", "127.0.0.1", 8080) == "127.0.0.1:8080"
    assert host(rs, "tcp", "0.0.0.0", 8080) == "127.0.0.1:8080"
    assert host(rs, "tcp", "::", 8080) == "127.0.0.1:8080"
    assert host(rs, "tcp", "::1", 8080) == "127.0.0.1:8080"  # ::1 counts as 127.0.0.1
    assert host(rs, "udp", "127.0.0.1", 5353) == "127.0.0.1:5353"  # proto any
    assert host(rs, "tcp", "192.168.5.15", 8080) == ""  # a specific other address: not forwarded
    assert host(rs, "tcp", "127.0.0.53", 53) == ""


def test_ssh_and_the_hosts_ssh_port_are_never_forwarded() -> None:
    rs = rules({"guestPort": 22, "hostPort": 2222, "guestIP": "0.0.0.0"})  # lima.yaml's rules come after
    decision = portrules.match(rs, "tcp", "0.0.0.0", 22)
    assert decision.ignored and decision.rule is not None and decision.rule.index == -1
    assert host(rs, "tcp", "127.0.0.1", 60022) == ""
    assert host(rules(ssh_port=0), "tcp", "127.0.0.1", 60022) == "127.0.0.1:60022"


def test_first_match_wins_with_port_ranges() -> None:
    rs = rules({"guestPortRange": [8000, 8009], "hostPortRange": [18000, 18009]},
               {"guestPort": 8005, "hostPort": 9999})
    assert host(rs, "tcp", "127.0.0.1", 8005) == "127.0.0.1:18005"
    assert host(rs, "tcp", "127.0.0.1", 8010) == "127.0.0.1:8010"  # the default rule


def test_ignore_rules_and_their_address() -> None:
    rs = rules({"guestPort": 7001, "ignore": True})
    assert portrules.match(rs, "tcp", "127.0.0.1", 7001).ignored
    # Lima: an ignore rule for one address does not ignore a listener on every address
    assert host(rs, "tcp", "0.0.0.0", 7001) == "127.0.0.1:7001"
    rs = rules({"guestIP": "0.0.0.0", "guestIPMustBeZero": False, "guestPort": 7001, "ignore": True})
    decision = portrules.match(rs, "tcp", "127.0.0.1", 7001)  # 0.0.0.0 without mustBeZero: any address
    assert decision.ignored and decision.rule is not None and decision.rule.index == 0


def test_guest_ip_must_be_zero() -> None:
    rs = rules({"guestIP": "0.0.0.0", "guestIPMustBeZero": True, "guestPort": 80, "hostPort": 8080,
                "hostIP": "0.0.0.0"})
    assert host(rs, "tcp", "0.0.0.0", 80) == "0.0.0.0:8080"
    assert host(rs, "tcp", "127.0.0.1", 80) == "127.0.0.1:80"  # not zero: the default rule
    rs = rules({"guestIP": "0.0.0.0", "guestPort": 80, "hostPort": 8080})  # mustBeZero defaults to true here
    assert host(rs, "tcp", "192.168.5.15", 80) == ""
    rs = rules({"guestIP": "0.0.0.0", "guestIPMustBeZero": False, "guestPort": 80, "hostPort": 8080})
    assert host(rs, "tcp", "192.168.5.15", 80) == "127.0.0.1:8080"


def test_proto_and_host_ip() -> None:
    rs = rules({"guestPort": 53, "proto": "udp", "hostPort": 5353}, {"guestPort": 53, "proto": "tcp", "ignore": True},
               {"guestPort": 443, "hostIP": "::1"})
    assert host(rs, "udp", "127.0.0.1", 53) == "127.0.0.1:5353"
    assert portrules.match(rs, "tcp", "127.0.0.1", 53).ignored
    assert host(rs, "tcp", "127.0.0.1", 443) == "[::1]:443"


def test_socket_rules_are_not_matched_and_their_paths_are_expanded(tmp_path: Path) -> None:
    rs = rules({"guestSocket": "/run/user/{{.UID}}/docker.sock", "hostSocket": "{{.Dir}}/sock/docker.sock"},
               {"guestSocket": "/var/run/x.sock", "hostSocket": "x.sock"},
               {"guestSocket": "/var/run/y.sock", "hostPort": 2375}, tmp=tmp_path)
    sockets = [r for r in rs if r.is_socket]
    assert [(r.guest_socket, portrules.host_address(r, 0)) for r in sockets] == [
        ("/run/user/1000/docker.sock", f"{tmp_path}/sock/docker.sock"),
        ("/var/run/x.sock", f"{tmp_path}/sock/x.sock"),  # relative: in the instance's sock/
        ("/var/run/y.sock", "127.0.0.1:2375")]
    assert host(rs, "tcp", "127.0.0.1", 2375) == "127.0.0.1:2375"  # the socket rule took no part
    with pytest.raises(ConfigError, match=r"portForwards\[0\].guestSocket"):
        rules({"guestSocket": "/run/{{.Nope}}.sock", "hostSocket": "a"})


def test_static_rules() -> None:
    rs = rules({"guestPort": 8888, "hostPort": 18888, "static": True},
               {"guestPortRange": [9000, 9001], "static": True},  # no singular guestPort: nothing (as Lima)
               {"guestPort": 7000})
    assert [(r.index, h, g) for r, h, g in portrules.static_forwards(rs)] == [(0, "127.0.0.1:18888", "127.0.0.1:8888")]
    assert portrules.statically_forwarded(rs, 8888) and portrules.statically_forwarded(rs, 9001)
    assert not portrules.statically_forwarded(rs, 7000)


def test_leading_ignore_rules_silence_not_forwarding() -> None:
    assert portrules.ignores_all(rules({"ignore": True, "proto": "udp"}), "udp")
    assert not portrules.ignores_all(rules({"ignore": True, "proto": "udp"}), "tcp")
    assert not portrules.ignores_all(rules({"guestPort": 80}, {"ignore": True}), "tcp")
