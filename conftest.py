"""Session-wide guard for every test directory: no test may leave a process behind.

Each session marks its environment with LIMA_TEST_SESSION; every process a test
starts (host agents, driver servers, fake VMs, qemu) inherits it. When the
session ends, any such process still alive is listed, killed, and fails the run.
"""

from __future__ import annotations

import os
import uuid

import psutil
import pytest

SESSION_ENV = "LIMA_TEST_SESSION"


def pytest_sessionstart(session: pytest.Session) -> None:
    os.environ[SESSION_ENV] = uuid.uuid4().hex


def _leaked(token: str) -> list[psutil.Process]:
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.info["pid"] == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if proc.environ().get(SESSION_ENV) == token:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    token = os.environ.get(SESSION_ENV)
    if not token:
        return
    leaked = _leaked(token)
    if not leaked:
        return
    _, alive = psutil.wait_procs(leaked, timeout=5)  # processes finishing their exit
    lines = []
    for proc in alive:
        try:
            lines.append(f"  {proc.pid}: {' '.join(proc.cmdline())[:200]}")
            proc.kill()
        except psutil.Error:
            continue
    if lines:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "processes left behind by the tests (killed now):\n" + "\n".join(lines)
        if reporter is not None:
            reporter.write_line(text, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
