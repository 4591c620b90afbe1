"""The guest agent of lima-core's fake guests (the fake driver's VM, the fake wsl.exe's distro).

A fake guest runs the ``lima-guestagent`` its cidata delivered, on the host,
as its boot script would: listening on
``<inst>/fakevm-root/run/lima-guestagent.sock``, which the fake ``ssh``
"forwards" to ``<inst>/ga.sock`` (see :mod:`lima_core.testing.fakessh`). Its
"guest's" sockets are read from tables in ``<inst>/fakevm-root/proc/net/``,
empty at boot: a test says that a guest program listens with :func:`listen`
(and stops with :func:`unlisten`). Connections the agent carries go to the
host's own address, so the "guest" server is a socket the test opens on the
host.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .. import atomicfile

ROOT = "fakevm-root"
AGENT = "usr/local/bin/lima-guestagent"
PID = "run/lima-guestagent.pid"
HEADER = {"tcp": "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
          "udp": "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode "
                 "ref pointer drops\n"}
STATE = {"tcp": "0A", "udp": "07"}


def _root(inst_dir: Path) -> Path:
    return Path(inst_dir) / ROOT


def _tables(inst_dir: Path) -> Path:
    return _root(inst_dir) / "proc" / "net"


def start_agent(inst_dir: Path, zipapp: bytes, die_with_parent: bool = False, boot: bool = True) -> None:
    """Install *zipapp* (cidata's lima-guestagent) in the fake root and start it in the background.

    *die_with_parent*: the agent gets SIGTERM when the calling process dies, however it dies (a fake VM
    killed by ``lima stop -f`` takes its guest's processes with it, as a real one does). *boot*: the
    guest just booted, nothing listens; False: the agent restarts in a running guest.
    """
    root = _root(inst_dir)
    stop_agent(inst_dir)
    tables = _tables(inst_dir)
    tables.mkdir(parents=True, exist_ok=True)
    for proto in ("tcp", "udp"):
        for suffix in ("", "6"):
            if boot or not (tables / f"{proto}{suffix}").exists():
                (tables / f"{proto}{suffix}").write_text(HEADER[proto])
    agent = root / AGENT
    agent.parent.mkdir(parents=True, exist_ok=True)
    agent.write_bytes(zipapp)
    (root / "run").mkdir(parents=True, exist_ok=True)
    with open(root / "var-log-lima-guestagent.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, str(agent), "daemon", "--allow-non-root", "--socket",
                                 str(root / "run" / "lima-guestagent.sock"), "--proc-net", str(tables), "--tick", "0.1"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                preexec_fn=_die_with_parent if die_with_parent else None)
    (root / PID).write_text(f"{proc.pid}\n")


def _die_with_parent() -> None:
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop_agent(inst_dir: Path) -> None:
    """Stop the agent :func:`start_agent` started (from any process), and wait until it is gone."""
    import psutil

    from .. import processes

    pid_file = _root(inst_dir) / PID
    try:
        pid = int(pid_file.read_text())
        proc = psutil.Process(pid)
        if str(_root(inst_dir) / AGENT) in proc.cmdline():
            processes.terminate(proc, 5.0)
    except (OSError, ValueError, psutil.Error):
        pass
    pid_file.unlink(missing_ok=True)


def _line(ip: str, port: int, state: str) -> str:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    raw = socket.inet_pton(family, ip)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    zero = "0" * len(raw.hex())
    return (f"   0: {raw.hex().upper()}:{port:04X} {zero}:0000 {state} 00000000:00000000 00:00000000 00000000  "
            f"1000        0 12345 1 0000000000000000 100 0 0 10 0\n")


def _table(inst_dir: Path, proto: str, ip: str) -> Path:
    return _tables(inst_dir) / (proto + ("6" if ":" in ip else ""))


def listen(inst_dir: Path, proto: str, ip: str, port: int) -> None:
    """A "guest" program now listens on *ip*:*port* (*proto* "tcp" or "udp")."""
    table = _table(inst_dir, proto, ip)
    atomicfile.write(table, table.read_text() + _line(ip, port, STATE[proto]))


def unlisten(inst_dir: Path, proto: str, ip: str, port: int) -> None:
    """That program stopped listening."""
    table = _table(inst_dir, proto, ip)
    line = _line(ip, port, STATE[proto])
    atomicfile.write(table, "".join(x for x in table.read_text().splitlines(keepends=True) if x != line))


class _Listening:
    """A lister whose "sockets" are what *listening()* returns."""

    how = {"tcp": "fake", "udp": "fake"}

    def __init__(self, listening: Callable[[], set]) -> None:
        self.listening = listening


def serve_agent(conn: socket.socket, listening: Callable[[], set[tuple[str, str, int]]], tick: float = 0.05) -> None:
    """Be the guest agent on *conn* until it closes (a vsock listener of a driver's fake): the real session,
    with the guest's listeners given by *listening()*; forwarded connections go to host addresses."""
    import asyncio

    from ..guestagent import daemon

    loop = asyncio.new_event_loop()
    try:
        agent = daemon.Agent(loop, _Listening(listening), tick=tick, use_trigger=False)
        agent.start()
        _transport, session = loop.run_until_complete(loop.create_connection(lambda: agent.session("vsock"),
                                                                             sock=conn))
        loop.run_until_complete(session.ended)
    finally:
        loop.close()
