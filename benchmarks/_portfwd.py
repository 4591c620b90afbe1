"""The guests B7, B8 and B9 measure port forwarding in, booted once per run and shared.

- the cloud-init test guest ("image B": ``templates/test-guest-cloud.yaml``, built by
  ``scripts/build-cloud-guest``) runs lima-guestagent: forwards go through the agent, over qemu's
  virtio-serial port;
- the tiny test guest has no python3: its TCP ports go over SSH (``ssh -O forward``).

Each is started with ``lima start`` in a private LIMA_HOME, internal qemu driver. The floor of B8 and
B9 is QEMU's own user-network forward to the same guest server: ``hostfwd_add`` over the instance's
QMP socket, the mechanism that already carries its SSH port.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import _env

START_TIMEOUT = 1200.0
#: opts.shared keys: the guests, and B8's server (shared with B9)
GUEST_KEY = "portfwd-guest-"
SERVER_KEY = "portfwd-server"
CLOUD_TEMPLATE = _env.REPO / "templates" / "test-guest-cloud.yaml"
CLOUD_GUEST = _env.REPO / ".cache" / "cloud-guest" / "current"

#: in the cloud guest: ``listen PORT`` (B7) reads commands on stdin; ``serve PORT`` (B8, B9) answers each
#: connection with b"e", then, if the client sends b"b", N MiB
GUEST_PROGRAM = r"""
import socket, sys, threading

def serve(sock, mib):
    chunk = b"x" * (1 << 20)
    def one(conn):
        try:
            conn.sendall(b"e")
            if conn.recv(1) == b"b":
                for _ in range(mib):
                    conn.sendall(chunk)
        except OSError:
            pass
        conn.close()
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=one, args=(conn,), daemon=True).start()

if sys.argv[1] == "serve":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.listen(64)
    serve(s, int(sys.argv[3]))
else:
    sock = None
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "bind":
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", int(arg)))
        elif cmd == "listen":
            sock.listen(16)
            threading.Thread(target=serve, args=(sock, 0), daemon=True).start()
        elif cmd == "close":
            sock.close()
        print(cmd, flush=True)
"""
#: in the tiny guest (busybox): ``listen PORT`` starts a server answering "e", ``close`` stops it
TINY_PROGRAM = ("while read cmd port; do case $cmd in "
                "listen) nc -ll -p $port -e printf e </dev/null >/dev/null 2>&1 & pid=$! ;; "
                "close) kill $pid; wait $pid 2>/dev/null ;; esac; echo $cmd; done")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """A started instance: its name, LIMA_HOME environment, and ways to run things in it."""

    def __init__(self, kind: str, home: Path) -> None:
        self.kind = kind
        self.name = f"bpf{kind[0]}"
        self.home = home
        self.env = _env.env(home)
        self.lima = _env.lima_command()
        self.dir = home / self.name

    def start(self, template: Path) -> None:
        _env.run([*self.lima, "create", "--name", self.name, str(template)], env=self.env, timeout=START_TIMEOUT)
        _env.run([*self.lima, "start", self.name, "--timeout", f"{START_TIMEOUT:g}s"], env=self.env,
                 timeout=START_TIMEOUT + 60)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            _env.run([*self.lima, "stop", "-f", self.name], env=self.env, check=False, timeout=120)

    def shell(self, *command: str, input: str | None = None) -> str:
        proc = subprocess.run([*self.lima, "shell", self.name, *command], env=self.env, input=input,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"lima shell {' '.join(command)}: {proc.stderr.strip()}")
        return proc.stdout

    def session(self, *command: str) -> subprocess.Popen:
        """A command in the guest fed line by line on stdin, answering line by line on stdout."""
        return subprocess.Popen([*self.lima, "shell", self.name, *command], env=self.env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def hostfwd(self, host_port: int, guest_port: int) -> None:
        """QEMU's own forward host 127.0.0.1:host_port -> guest guest_port (the floor)."""
        from lima_driver_qemu import qmp

        out = qmp.hmp(self.dir / "qmp.sock", f"hostfwd_add net0 tcp:127.0.0.1:{host_port}-:{guest_port}")
        if out.strip():
            raise RuntimeError(f"hostfwd_add: {out.strip()}")

    def wait_forwarded(self, port: int, timeout: float = 180) -> None:
        """Until a connection to the host's 127.0.0.1:port gets the guest server's greeting."""
        deadline = time.monotonic() + timeout
        while not greeted(port):
            if time.monotonic() > deadline:
                forwards = _env.run([*self.lima, "port-forwards", self.name], env=self.env, check=False).stdout
                guest = self.shell("sh", "-c", "ss -ltnp 2>&1 | tail -n 20; tail -n 5 /tmp/srv-*.log 2>/dev/null || true")
                raise RuntimeError(f"127.0.0.1:{port} was not forwarded within {timeout:g} s; the host agent "
                                   f"forwards:\n{forwards}the guest listens:\n{guest}")
            time.sleep(0.05)


def greeted(port: int, timeout: float = 5.0) -> bool:
    """A connection to 127.0.0.1:port that receives the guest server's b"e"."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
            return c.recv(1) == b"e"
    except OSError:
        return False


def cloud_template() -> Path | None:
    if CLOUD_TEMPLATE.is_file() and (CLOUD_GUEST / "manifest.json").is_file():
        return CLOUD_TEMPLATE
    return None


def shared_guest(opts: _env.Options, kind: str) -> Guest:
    """The guest *kind* ("cloud" or "tiny"), started on first use and kept for B7-B9 (see :func:`release`).

    :raises _env.Skip: it cannot run here.
    """
    key = f"{GUEST_KEY}{kind}"
    if key in opts.shared:
        return opts.shared[key]
    if shutil.which("qemu-system-x86_64") is None:
        raise _env.Skip("qemu-system-x86_64 is not installed")
    if kind == "cloud":
        template = cloud_template()
        if template is None:
            raise _env.Skip(f"the cloud-init test guest is not here ({CLOUD_TEMPLATE.relative_to(_env.REPO)} and "
                            "the image scripts/build-cloud-guest builds)")
    else:
        if _env.test_guest() is None:
            raise _env.Skip("the test guest is not built (run .venv/bin/python scripts/build-test-guest)")
        template = _env.REPO / "templates" / "test-guest.yaml"
    g = opts.shared[key] = Guest(kind, Path(tempfile.mkdtemp(prefix=f"lpf{kind[0]}-", dir="/tmp")))
    g.start(template)
    if kind == "cloud":
        g.shell("sh", "-c", "cat > /tmp/bench.py", input=GUEST_PROGRAM)
    return g


def release(opts: _env.Options, me: str) -> None:
    """After benchmark *me*: stop the guests unless a later one of B7-B9 in this run still needs them."""
    order = [b for b in opts.only if b in ("B7", "B8", "B9")]
    if me in order and order.index(me) < len(order) - 1:
        return
    opts.shared.pop(SERVER_KEY, None)
    for key in [k for k in opts.shared if k.startswith(GUEST_KEY)]:
        g = opts.shared.pop(key)
        g.stop()
        if not opts.keep:
            shutil.rmtree(g.home, ignore_errors=True)
