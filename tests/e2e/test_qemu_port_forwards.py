"""Port forwarding in real guests under QEMU, through the installed `lima` command, with the qemu driver
internal and external:

- the tiny test guest has no python3, so no guest agent: its TCP ports are forwarded over SSH;
- the cloud-init guest ("image B", tests/guests.py) runs lima-guestagent, installed from cidata by
  boot.Linux/25-guestagent-base.sh and reached through qemu's virtio-serial port.

Each test starts its guest's servers after READY: a lima.yaml rule, Lima's default rule, an ignore rule,
a host port already taken, a port closed again; the cloud guest also UDP, unix sockets both ways and a
static rule.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from limae2e import TEMPLATE

pytestmark = pytest.mark.vm


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def forwards(lima, name: str) -> dict:
    return json.loads(lima("port-forwards", name, "--format", "json").stdout)


def wait_forward(lima, name: str, host: str, state: str | None = "forwarding", timeout: float = 60) -> dict:
    """Until the forward to *host* is in *state* (None: until it is gone)."""
    deadline = time.monotonic() + timeout
    while True:
        now = {f["hostAddr"]: f for f in forwards(lima, name)["portForwards"]}
        if (now.get(host, {}).get("state") == state) if state else host not in now:
            return now
        assert time.monotonic() < deadline, f"{host} not {state or 'gone'} within {timeout} s: {now}"
        time.sleep(0.2)


def fetch(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        out = b""
        while data := c.recv(4096):
            out += data
        return out


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def pf_events(inst_dir: Path) -> list[tuple[str, str]]:
    out = []
    for line in (inst_dir / "ha.stdout.log").read_text().splitlines():
        pf = json.loads(line)["status"].get("portForward")
        if pf:
            out.append((pf["type"], pf["hostAddr"] or pf["guestAddr"]))
    return out


def use_driver(lima_env: dict[str, str], mode: str) -> None:
    if mode == "external":
        lima_env["LIMA_EXTERNAL_DRIVERS"] = "qemu"


# -- the tiny guest: no agent, TCP over SSH ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["internal", "external"])
def test_tiny_guest_forwards_tcp_over_ssh(lima, lima_env: dict[str, str], mode: str) -> None:
    use_driver(lima_env, mode)
    rule_guest, rule_host, ignored, default, taken = (free_port() for _ in range(5))
    rules = [{"guestPort": rule_guest, "hostPort": rule_host}, {"guestPort": ignored, "ignore": True}]
    lima("create", "--name", "tiny", "--set", f".portForwards = {json.dumps(rules)}", str(TEMPLATE))
    r = lima("start", "tiny")
    assert "READY" in r.stderr and f"with {mode} VM driver 'qemu'" in r.stderr
    inst_dir = Path(lima_env["LIMA_HOME"]) / "tiny"
    assert forwards(lima, "tiny")["guestAgent"]["state"] == "ssh"
    log = (inst_dir / "ha.stderr.log").read_text()
    assert "the guest has no python3, so lima-guestagent cannot run there" in log

    holder = socket.socket()  # the host port the guest's next server would get is taken
    holder.bind(("127.0.0.1", taken))
    holder.listen()
    lima("shell", "tiny", "sh", "-c",
         "mkdir -p /tmp/www && echo rule > /tmp/www/index.html && "
         f"httpd -p 127.0.0.1:{rule_guest} -h /tmp/www && httpd -p 127.0.0.1:{ignored} -h /tmp/www && "
         f"httpd -p 127.0.0.1:{taken} -h /tmp/www && "
         f"(nc -ll -p {default} -e echo default </dev/null >/dev/null 2>&1 & echo $! > /tmp/nc.pid)")
    wait_forward(lima, "tiny", f"127.0.0.1:{rule_host}")
    assert urllib.request.urlopen(f"http://127.0.0.1:{rule_host}/", timeout=30).read() == b"rule\n"
    wait_forward(lima, "tiny", f"127.0.0.1:{default}")
    assert fetch(default) == b"default\n"
    now = wait_forward(lima, "tiny", f"127.0.0.1:{taken}", state="failed")
    assert "already in use on the host" in now[f"127.0.0.1:{taken}"]["error"]
    assert f"127.0.0.1:{ignored}" not in now and refused(ignored)

    lima("shell", "tiny", "sh", "-c", "kill $(cat /tmp/nc.pid)")
    wait_forward(lima, "tiny", f"127.0.0.1:{default}", state=None)
    assert refused(default)

    log = (inst_dir / "ha.stderr.log").read_text()
    assert log.count(f"Forwarding TCP from 127.0.0.1:{rule_guest} to 127.0.0.1:{rule_host}") == 1
    assert log.count(f"Not forwarding TCP 127.0.0.1:{ignored}") == 1
    assert log.count(f"cannot forward TCP from 127.0.0.1:{taken} to 127.0.0.1:{taken}") == 1
    # busybox nc listens on [::] (both families)
    assert len(re.findall(rf"Stopping forwarding TCP from (0\.0\.0\.0|\[::\]):{default} to 127\.0\.0\.1:{default}",
                          log)) == 1
    events = pf_events(inst_dir)
    assert events.count(("failed", f"127.0.0.1:{taken}")) == 1
    assert ("stopping", f"127.0.0.1:{default}") in events
    lima("stop", "tiny")
    assert refused(rule_host)
    holder.close()


# -- the cloud-init guest: the guest agent ------------------------------------------------------------------

GUEST_SERVER = r"""
import os, socket, sys, threading, time
kind, where = sys.argv[1], sys.argv[2]
if kind == "udp":
    host, port = where.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    while True:
        data, addr = s.recvfrom(65536)
        s.sendto(b"udp " + data, addr)
if kind == "unix":
    s = socket.socket(socket.AF_UNIX)
    s.bind(where)
else:
    host, port = where.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    if kind == "tcp-late":
        time.sleep(3)  # bound a while before it listens
s.listen(16)
while True:
    conn, _ = s.accept()
    conn.sendall(("hello from the guest's " + where).encode())
    conn.close()
"""


def start_server(lima, name: str, kind: str, where: str) -> str:
    """A server in the guest, in the background; its pid."""
    out = lima("shell", name, "sh", "-c", f"nohup python3 /tmp/srv.py {kind} {where} >/tmp/srv-{kind}.log 2>&1 "
                                          "</dev/null & echo $!").stdout
    return out.strip()


@pytest.fixture
def cloud_template() -> Path:
    guests = pytest.importorskip("guests", reason="image B (tests/guests.py) is not in this tree")
    found = guests.find_cloud_guest()
    if isinstance(found, str):
        pytest.skip(found)
    return found.template


@pytest.mark.parametrize("mode", ["internal", "external"])
def test_cloud_guest_forwards_through_the_guest_agent(lima, lima_env: dict[str, str], mode: str,
                                                      cloud_template: Path, short_tmp: Path) -> None:
    use_driver(lima_env, mode)
    rule_guest, rule_host, ignored, default, taken, udp_guest, udp_host, static_guest, static_host = (
        free_port() for _ in range(9))
    reverse_host = short_tmp / "host-side.sock"
    rules = [{"guestPort": rule_guest, "hostPort": rule_host},
             {"guestPort": ignored, "ignore": True},
             {"guestPort": udp_guest, "hostPort": udp_host, "proto": "udp"},
             {"guestPort": static_guest, "hostPort": static_host, "static": True},
             {"guestSocket": "/tmp/lima-e2e.sock", "hostSocket": "e2e.sock"},
             {"guestSocket": "/tmp/lima-e2e-reverse.sock", "hostSocket": str(reverse_host), "reverse": True}]
    lima("create", "--name", "cloud", "--set", f".portForwards = {json.dumps(rules)}", str(cloud_template))
    host_server = socket.socket(socket.AF_UNIX)  # what the reverse rule exposes in the guest
    host_server.bind(str(reverse_host))
    host_server.listen()
    threading.Thread(target=lambda: host_server.accept()[0].sendall(b"from the host"), daemon=True).start()
    r = lima("start", "cloud", "--timeout", "15m", timeout=1000)
    assert "READY" in r.stderr and f"with {mode} VM driver 'qemu'" in r.stderr
    inst_dir = Path(lima_env["LIMA_HOME"]) / "cloud"
    agent = forwards(lima, "cloud")["guestAgent"]
    assert agent["state"] == "connected" and agent["info"]["trigger"] == "tracefs", agent
    assert agent["info"]["discovery"] == {"tcp": "sock_diag", "udp": "sock_diag"}
    unit = lima("shell", "cloud", "systemctl", "cat", "lima-guestagent.service").stdout
    assert "--virtio-port io.lima-vm.guest_agent.0" in unit

    holder = socket.socket()
    holder.bind(("127.0.0.1", taken))
    holder.listen()
    lima("shell", "cloud", "sh", "-c", f"cat > /tmp/srv.py <<'EOF'\n{GUEST_SERVER}\nEOF")
    start_server(lima, "cloud", "tcp", f"127.0.0.1:{rule_guest}")
    default_pid = start_server(lima, "cloud", "tcp", f"0.0.0.0:{default}")
    start_server(lima, "cloud", "tcp", f"127.0.0.1:{ignored}")
    start_server(lima, "cloud", "tcp", f"127.0.0.1:{taken}")
    start_server(lima, "cloud", "tcp", f"127.0.0.1:{static_guest}")
    start_server(lima, "cloud", "udp", f"127.0.0.1:{udp_guest}")
    start_server(lima, "cloud", "unix", "/tmp/lima-e2e.sock")

    wait_forward(lima, "cloud", f"127.0.0.1:{rule_host}")
    assert fetch(rule_host) == f"hello from the guest's 127.0.0.1:{rule_guest}".encode()
    wait_forward(lima, "cloud", f"127.0.0.1:{default}")
    assert fetch(default) == f"hello from the guest's 0.0.0.0:{default}".encode()
    wait_forward(lima, "cloud", f"127.0.0.1:{udp_host}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(30)
        c.sendto(b"ping", ("127.0.0.1", udp_host))
        assert c.recvfrom(100)[0] == b"udp ping"
    assert fetch(static_host) == f"hello from the guest's 127.0.0.1:{static_guest}".encode()  # over SSH
    now = wait_forward(lima, "cloud", f"127.0.0.1:{taken}", state="failed")
    assert f"127.0.0.1:{ignored}" not in now and refused(ignored)
    sock = str(inst_dir / "sock" / "e2e.sock")
    assert now[sock]["via"] == "agent"
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(30)
        c.connect(sock)
        assert c.recv(100) == b"hello from the guest's /tmp/lima-e2e.sock"
    reverse = lima("shell", "cloud", "python3", "-c", "import socket; s = socket.socket(socket.AF_UNIX); "
                   "s.connect('/tmp/lima-e2e-reverse.sock'); print(s.recv(100).decode())").stdout
    assert reverse.strip() == "from the host"

    lima("shell", "cloud", "kill", default_pid)
    wait_forward(lima, "cloud", f"127.0.0.1:{default}", state=None)
    assert refused(default)

    # Host clients that reset their connections as the guest server closes its end: each connection ends,
    # the agent session does not.
    for _ in range(30):
        c = socket.create_connection(("127.0.0.1", rule_host), timeout=30)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    assert fetch(rule_host) == f"hello from the guest's 127.0.0.1:{rule_guest}".encode()
    # The agent restarts (the boot scripts restart it when it changed), then a server binds and listens
    # seconds later: the host agent greets the new agent at once, not after its ping timeout (60 s).
    lima("shell", "cloud", "sudo", "systemctl", "restart", "lima-guestagent")
    late = free_port()
    start_server(lima, "cloud", "tcp-late", f"127.0.0.1:{late}")
    wait_forward(lima, "cloud", f"127.0.0.1:{late}", timeout=20)
    assert fetch(late) == f"hello from the guest's 127.0.0.1:{late}".encode()
    assert forwards(lima, "cloud")["guestAgent"]["state"] == "connected"

    log = (inst_dir / "ha.stderr.log").read_text()
    for line in (f"Forwarding TCP from 127.0.0.1:{rule_guest} to 127.0.0.1:{rule_host}",
                 f"Forwarding TCP from 0.0.0.0:{default} to 127.0.0.1:{default}",
                 f"Forwarding UDP from 127.0.0.1:{udp_guest} to 127.0.0.1:{udp_host}",
                 f"Forwarding UNIX from /tmp/lima-e2e.sock to {sock}",
                 f"Not forwarding TCP 127.0.0.1:{ignored}",
                 f"cannot forward TCP from 127.0.0.1:{taken} to 127.0.0.1:{taken}",
                 f"Stopping forwarding TCP from 0.0.0.0:{default} to 127.0.0.1:{default}"):
        assert log.count(line) == 1, line
    assert log.count("connected to the guest agent") == 1 and "lost the connection to the guest agent" not in log
    assert pf_events(inst_dir).count(("failed", f"127.0.0.1:{taken}")) == 1

    lima("stop", "cloud", timeout=300)
    assert refused(rule_host) and not Path(sock).exists()
    holder.close()
    host_server.close()
