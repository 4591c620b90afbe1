"""Helpers of the guest agent tests: a guest agent on the host (``python -m lima_core.guestagent daemon`` on
a unix socket) and the host agent's end of the protocol, run on an asyncio loop in a thread."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from lima_core.hostagent import gaclient, hostlisten


class Host:
    """The host's end: a HostSession on a loop thread; what it heard; listeners."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.session: gaclient.HostSession | None = None
        self.listening: set[tuple[str, str, int]] = set()
        self.reports: list[tuple[set, set]] = []
        self.errors: list[str] = []
        self.changed = threading.Condition()

    def call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def connect(self, path: Path) -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(path))
            _t, self.session = await self.loop.create_connection(
                lambda: gaclient.HostSession(self.loop, self._ports, self.errors.append), sock=sock)
            return await self.session.hello
        return self.call(go())

    def _ports(self, added: set, removed: set, whole: bool = False) -> None:
        with self.changed:
            self.listening = set(added) if whole else (self.listening - removed) | added
            self.reports.append((added, removed))
            self.changed.notify_all()

    def wait_for(self, pred: Callable[[set], bool], timeout: float = 10) -> float:
        started = time.monotonic()
        with self.changed:
            assert self.changed.wait_for(lambda: pred(self.listening), timeout), self.listening
        return time.monotonic() - started

    def forward(self, proto: str, host: str, guest_proto: str, target: str) -> hostlisten.Listener:
        return self.call(hostlisten.listen(self.loop, proto, host, guest_proto, lambda: self.session, lambda: target))

    def close(self) -> None:
        if self.session is not None:
            self.loop.call_soon_threadsafe(self.session.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class AgentProcess:
    def __init__(self, directory: Path, *args: str) -> None:
        self.socket = directory / "ga.sock"
        self.log = directory / "agent.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "lima_core.guestagent", "daemon", "--allow-non-root",
                                          "--socket", str(self.socket), *args], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the agent did not listen"
            time.sleep(0.02)

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(10)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def result(future: Future, timeout: float = 10) -> Any:
    return future.result(timeout)
