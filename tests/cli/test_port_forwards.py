"""Port forwarding through the host agent with the fake driver, whose guest runs the real guest agent on
the host (lima_core.testing.fakeguest): the "guest's" listeners are declared in its socket tables, and
its servers are sockets on the host's own addresses."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from lima_core.testing import fakeguest

pytestmark = pytest.mark.usefixtures("fake_ssh")


def free_port(kind: int = socket.SOCK_STREAM, family: int = socket.AF_INET) -> int:
    with socket.socket(family, kind) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return s.getsockname()[1]


def serve_tcp(family: int, address: tuple) -> socket.socket:
    srv = socket.socket(family)
    srv.bind(address)
    srv.listen()

    def run() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.sendall(b"hello from " + address[0].encode())
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    return srv


def fetch(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        out = b""
        while data := c.recv(4096):
            out += data
        return out


def forwards(lima, name: str) -> dict:
    return json.loads(lima("port-forwards", name, "--format", "json", ok=True).stdout)


def wait(lima, name: str, pred, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        now = forwards(lima, name)
        if pred(now) or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def by_host(state: dict) -> dict[str, dict]:
    return {f["hostAddr"]: f for f in state["portForwards"]}


def events(inst_dir: Path) -> list[dict]:
    out = []
    for line in (inst_dir / "ha.stdout.log").read_text().splitlines():
        status = json.loads(line)["status"]
        if "portForward" in status:
            out.append(status["portForward"])
    return out


def test_rules_defaults_ignore_udp_sockets_close_and_a_taken_port(lima, driver_mode: str, fake_template: Path,
                                                                  lima_home: Path, instances: list[str],
                                                                  short_tmp: Path, leftovers) -> None:
    instances.append("pf")
    rule_guest, rule_host, ignored, default6, taken, udp6 = (free_port() for _ in range(6))
    guest_sock = short_tmp / "guest.sock"
    template = fake_template.read_text() + (
        "portForwards:\n"
        f"- guestPort: {rule_guest}\n  hostPort: {rule_host}\n"
        f"- guestPort: {ignored}\n  ignore: true\n"
        f"- guestSocket: {guest_sock}\n  hostSocket: fwd.sock\n")
    fake_template.write_text(template)
    lima("create", "--name", "pf", str(fake_template), ok=True)
    r = lima("start", "pf", ok=True)
    assert "READY" in r.stderr and "DEGRADED" not in r.stderr
    inst_dir = lima_home / "pf"
    state = forwards(lima, "pf")
    assert state["guestAgent"]["state"] == "connected"
    host_sock = str(inst_dir / "sock" / "fwd.sock")
    assert by_host(state)[host_sock]["state"] == "forwarding"  # the socket rule, at once

    # A rule: guest 127.0.0.1:rule_guest -> host 127.0.0.1:rule_host, opened after READY.
    servers = [serve_tcp(socket.AF_INET, ("127.0.0.1", rule_guest))]
    fakeguest.listen(inst_dir, "tcp", "127.0.0.1", rule_guest)
    wait(lima, "pf", lambda s: f"127.0.0.1:{rule_host}" in by_host(s))
    assert fetch(rule_host) == b"hello from 127.0.0.1"

    # The default rule: a listener on ::1 goes to the host's 127.0.0.1, same port.
    servers.append(serve_tcp(socket.AF_INET6, ("::1", default6)))
    fakeguest.listen(inst_dir, "tcp", "::1", default6)
    wait(lima, "pf", lambda s: f"127.0.0.1:{default6}" in by_host(s))
    assert fetch(default6) == b"hello from ::1"

    # UDP, by the default rule.
    usrv = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    usrv.bind(("::1", udp6))
    threading.Thread(target=lambda: [usrv.sendto(d.upper(), a) for d, a in iter(lambda: usrv.recvfrom(100), None)],
                     daemon=True).start()
    fakeguest.listen(inst_dir, "udp", "::1", udp6)
    wait(lima, "pf", lambda s: f"127.0.0.1:{udp6}" in by_host(s))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(10)
        c.sendto(b"udp", ("127.0.0.1", udp6))
        assert c.recvfrom(100)[0] == b"UDP"

    # An ignore rule.
    fakeguest.listen(inst_dir, "tcp", "127.0.0.1", ignored)
    # A host port already taken (the "guest's" server holds it, on the same host): reported once.
    servers.append(serve_tcp(socket.AF_INET, ("127.0.0.1", taken)))
    fakeguest.listen(inst_dir, "tcp", "127.0.0.1", taken)
    state = wait(lima, "pf", lambda s: by_host(s).get(f"127.0.0.1:{taken}", {}).get("state") == "failed")
    assert "already in use on the host" in by_host(state)[f"127.0.0.1:{taken}"]["error"]

    # The unix socket.
    servers.append(socket.socket(socket.AF_UNIX))
    servers[-1].bind(str(guest_sock))
    servers[-1].listen()
    threading.Thread(target=lambda: servers[-1].accept()[0].sendall(b"docker"), daemon=True).start()
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(10)
        c.connect(host_sock)
        assert c.recv(100) == b"docker"

    # A port closed again: released on the host.
    fakeguest.unlisten(inst_dir, "tcp", "::1", default6)
    wait(lima, "pf", lambda s: f"127.0.0.1:{default6}" not in by_host(s))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", default6), timeout=5)
    time.sleep(0.5)  # a few more listings of the tables: nothing is reported again

    log = (inst_dir / "ha.stderr.log").read_text()
    for line in (f"Forwarding TCP from 127.0.0.1:{rule_guest} to 127.0.0.1:{rule_host}",
                 f"Forwarding TCP from [::1]:{default6} to 127.0.0.1:{default6}",
                 f"Forwarding UDP from [::1]:{udp6} to 127.0.0.1:{udp6}",
                 f"Not forwarding TCP 127.0.0.1:{ignored}",
                 f"Stopping forwarding TCP from [::1]:{default6} to 127.0.0.1:{default6}",
                 f"cannot forward TCP from 127.0.0.1:{taken} to 127.0.0.1:{taken}: 127.0.0.1:{taken} is already in use"):
        assert log.count(line) == 1, line
    seen = [(e["type"], e["hostAddr"]) for e in events(inst_dir)]
    assert seen.count(("forwarding", f"127.0.0.1:{rule_host}")) == 1
    assert seen.count(("stopping", f"127.0.0.1:{default6}")) == 1
    assert seen.count(("failed", f"127.0.0.1:{taken}")) == 1
    assert ("not-forwarding", "") in seen

    lima("stop", "pf", ok=True)
    assert not Path(host_sock).exists(), "the host socket is removed when the instance stops"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", rule_host), timeout=5)
    assert leftovers() == []
    for s in servers + [usrv]:
        s.close()


def test_plain_mode_forwards_static_rules_only(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                               instances: list[str]) -> None:
    instances.append("plain")
    fake_template.write_text(fake_template.read_text() + "plain: true\nportForwards:\n- guestPort: 8080\n"
                             "- guestPort: 8081\n  hostPort: 18081\n  static: true\n")
    lima("create", "--name", "plain", str(fake_template), ok=True)
    lima("start", "plain", ok=True)
    state = forwards(lima, "plain")
    assert state["guestAgent"]["state"] == "plain"
    assert [(f["hostAddr"], f["via"], f.get("static")) for f in state["portForwards"]] == [
        ("127.0.0.1:18081", "ssh", True)]
    assert not (lima_home / "plain" / "fakevm-root" / "usr" / "local" / "bin" / "lima-guestagent").exists()
    lima("stop", "plain", ok=True)


def test_port_forwards_of_a_stopped_instance(lima, driver_mode: str, fake_template: Path, instances: list[str]) -> None:
    instances.append("down")
    lima("create", "--name", "down", str(fake_template), ok=True)
    r = lima("port-forwards", "down", ok=False)
    assert r.stderr.strip() == "lima: instance 'down' is not running; `lima start down` starts it"
    r = lima("port-forwards", "nosuch", ok=False)
    assert "nosuch" in r.stderr and "Traceback" not in r.stderr


def test_the_agent_restarting(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                              instances: list[str]) -> None:
    """The host agent reconnects; forwards of listeners still there stay as they were, the others go."""
    instances.append("again")
    lima("create", "--name", "again", str(fake_template), ok=True)
    lima("start", "again", ok=True)
    inst_dir = lima_home / "again"
    kept, gone = free_port(family=socket.AF_INET6), free_port(family=socket.AF_INET6)
    server = serve_tcp(socket.AF_INET6, ("::1", kept))
    for port in (kept, gone):
        fakeguest.listen(inst_dir, "tcp", "::1", port)
    wait(lima, "again", lambda s: {f"127.0.0.1:{kept}", f"127.0.0.1:{gone}"} <= set(by_host(s)))

    agent = (inst_dir / fakeguest.ROOT / fakeguest.AGENT).read_bytes()
    fakeguest.stop_agent(inst_dir)
    wait(lima, "again", lambda s: s["guestAgent"]["state"] == "waiting")
    fakeguest.unlisten(inst_dir, "tcp", "::1", gone)
    fakeguest.start_agent(inst_dir, agent, boot=False)  # (not a child of the fake VM: stopped below)
    try:
        state = wait(lima, "again", lambda s: s["guestAgent"]["state"] == "connected"
                     and f"127.0.0.1:{gone}" not in by_host(s))
        assert by_host(state)[f"127.0.0.1:{kept}"]["state"] == "forwarding"
        assert fetch(kept) == b"hello from ::1"
        log = (inst_dir / "ha.stderr.log").read_text()
        assert "lost the connection to the guest agent; reconnecting" in log
        assert log.count(f"Forwarding TCP from [::1]:{kept} to 127.0.0.1:{kept}") == 1
        assert log.count(f"Stopping forwarding TCP from [::1]:{gone} to 127.0.0.1:{gone}") == 1, log
        lima("stop", "again", ok=True)
    finally:
        fakeguest.stop_agent(inst_dir)
        server.close()
