"""Which guest sockets are forwarded, and to where: Lima's rule list and its first match.

The rules, in order (Lima's ``portForwardRules``): guest port 22 on any
address is ignored, so is the guest port that equals the host's SSH port,
then come lima.yaml's ``portForwards`` (defaults filled by
:mod:`lima_core.guestfields`), then the built-in rule forwarding any port on
the guest's loopback (or any-address) to the same port on the host's
127.0.0.1. For a guest listener the first rule that matches decides
(:func:`match`); an ``ignore`` rule that matches means it is not forwarded.
Socket rules (``guestSocket``) are forwarded as they stand, not matched.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path

from .. import filenames, gotemplate
from ..guestagent.mux import join_address
from ..limatype import LimaYAML, PortForward

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOOPBACK4 = ipaddress.ip_address("127.0.0.1")
LOOPBACK6 = ipaddress.ip_address("::1")
ANY4 = ipaddress.ip_address("0.0.0.0")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One rule, resolved: addresses parsed, socket paths expanded, ranges as (first, last)."""

    #: position in lima.yaml's portForwards; -1 for Lima's built-in rules
    index: int
    proto: str = "any"
    guest_ip: IPAddress = LOOPBACK4
    guest_ip_must_be_zero: bool = False
    guest_ports: tuple[int, int] = (1, 65535)
    guest_port: int = 0
    guest_socket: str = ""
    host_ip: IPAddress = LOOPBACK4
    host_ports: tuple[int, int] = (1, 65535)
    host_port: int = 0
    host_socket: str = ""
    ignore: bool = False
    reverse: bool = False
    static: bool = False

    @property
    def is_socket(self) -> bool:
        return bool(self.guest_socket)

    def describe(self) -> str:
        return f"portForwards[{self.index}]" if self.index >= 0 else "the default rule"


@dataclasses.dataclass(frozen=True)
class Decision:
    """Where a guest listener goes: ``host`` is ``ip:port`` or a socket path, or "" (not forwarded)."""

    host: str
    rule: Rule | None

    @property
    def ignored(self) -> bool:
        return not self.host


def resolve(cfg: LimaYAML, ssh_local_port: int, inst_dir: Path, guest_values: dict[str, object],
            host_values: dict[str, object]) -> list[Rule]:
    """The effective rule list: Lima's two leading ignore rules, lima.yaml's, the default rule.

    :raises ConfigError: a socket path whose template cannot be expanded.
    """
    out = [Rule(-1, guest_ip=ANY4, guest_ports=(22, 22), ignore=True)]
    if ssh_local_port and ssh_local_port != 22:
        out.append(Rule(-1, guest_ip=ANY4, guest_ports=(ssh_local_port, ssh_local_port), ignore=True))
    for i, pf in enumerate(cfg.port_forwards or []):
        out.append(_rule(i, pf, inst_dir, guest_values, host_values))
    out.append(Rule(-1))
    return out


def _rule(i: int, pf: PortForward, inst_dir: Path, guest_values: dict[str, object],
          host_values: dict[str, object]) -> Rule:
    where = f"portForwards[{i}]"
    guest_ports = tuple(pf.guest_port_range or (1, 65535))
    host_ports = tuple(pf.host_port_range or guest_ports)
    guest_socket = gotemplate.expand(pf.guest_socket, guest_values, f"{where}.guestSocket") if pf.guest_socket else ""
    host_socket = ""
    if pf.host_socket:
        host_socket = os.path.expanduser(gotemplate.expand(pf.host_socket, host_values, f"{where}.hostSocket"))
        if not os.path.isabs(host_socket):
            host_socket = str(inst_dir / filenames.SOCKET_DIR / host_socket)
    return Rule(i, proto=pf.proto or "any", guest_ip=ipaddress.ip_address(pf.guest_ip or "127.0.0.1"),
                guest_ip_must_be_zero=bool(pf.guest_ip_must_be_zero), guest_ports=(guest_ports[0], guest_ports[1]),
                guest_port=pf.guest_port or 0, guest_socket=guest_socket,
                host_ip=ipaddress.ip_address(pf.host_ip or "127.0.0.1"), host_ports=(host_ports[0], host_ports[1]),
                host_port=pf.host_port or 0, host_socket=host_socket, ignore=bool(pf.ignore),
                reverse=bool(pf.reverse), static=bool(pf.static))


def match(rules: list[Rule], proto: str, ip: str, port: int) -> Decision:
    """The first rule that matches listener (*proto*, *ip*, *port*) decides (Lima's forwardingAddresses)."""
    guest = ipaddress.ip_address(ip)
    for rule in rules:
        if rule.is_socket:
            continue
        if rule.proto not in ("any", proto):
            continue
        if not rule.guest_ports[0] <= port <= rule.guest_ports[1]:
            continue
        if not (guest.is_unspecified or guest == rule.guest_ip
                or (guest == LOOPBACK6 and rule.guest_ip == LOOPBACK4)
                or (rule.guest_ip.is_unspecified and not rule.guest_ip_must_be_zero)):
            continue
        if rule.ignore:
            if guest.is_unspecified and not rule.guest_ip.is_unspecified:
                continue  # a rule for one address does not ignore a listener on all of them
            return Decision("", rule)
        return Decision(host_address(rule, port), rule)
    return Decision("", None)


def host_address(rule: Rule, guest_port: int) -> str:
    """The host side of *rule* for guest port *guest_port* (0: the rule's guest socket)."""
    if rule.host_socket:
        return rule.host_socket
    port = rule.host_port if guest_port == 0 else guest_port + rule.host_ports[0] - rule.guest_ports[0]
    return join_address(str(rule.host_ip), port)


def statically_forwarded(rules: list[Rule], port: int) -> bool:
    """A static rule covers this guest port (it is forwarded over SSH already; Lima compares ports only)."""
    return any(r.static and r.guest_ports[0] <= port <= r.guest_ports[1] for r in rules)


def ignores_all(rules: list[Rule], proto: str) -> bool:
    """lima.yaml's rules begin with ignore rules covering every port for *proto* (Lima then logs no
    "Not forwarding" lines for it)."""
    for rule in rules:
        if rule.index < 0:
            continue
        if not rule.ignore or rule.is_socket:
            return False
        if rule.guest_ports == (1, 65535) and rule.proto in ("any", proto):
            return True
    return False


def static_forwards(rules: list[Rule]) -> list[tuple[Rule, str, str]]:
    """Lima's static forwards: (rule, host address, guest address) for each static TCP rule, resolved
    through the whole list from its singular guestIP and guestPort (a rule with only a range has none)."""
    out = []
    for rule in rules:
        if not rule.static or rule.is_socket or rule.index < 0 or rule.proto == "udp" or not rule.guest_port:
            continue
        decision = match(rules, "tcp", str(rule.guest_ip), rule.guest_port)
        if decision.host:
            out.append((rule, decision.host, join_address(str(rule.guest_ip), rule.guest_port)))
    return out

