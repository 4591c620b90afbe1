"""lima_core.processes: how a process ended, waiting for its exit."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil
import pytest

from lima_core import pidfile, processes


@pytest.mark.parametrize(("code", "text"), [
    (0, "exited with status 0"), (3, "exited with status 3"), (-signal.SIGKILL, "was killed by SIGKILL"),
    (-signal.SIGTERM, "was killed by SIGTERM"), (-200, "was killed by signal 200"),
])
def test_describe_exit(code: int, text: str) -> None:
    assert processes.describe_exit(code) == text


def test_describe_exit_of_a_real_child() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert processes.describe_exit(proc.wait()) == "was killed by SIGKILL"
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    assert processes.describe_exit(proc.wait()) == "exited with status 7"


def test_wait_exit_counts_a_zombie_as_gone_and_leaves_it_to_its_owner() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(5)"])
    found = psutil.Process(proc.pid)
    assert processes.wait_exit(found, 10)
    assert proc.wait(5) == 5  # not reaped by wait_exit: the owner still sees the status


def test_wait_exit_times_out_on_a_running_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not processes.wait_exit(psutil.Process(proc.pid), 0.1)
    finally:
        proc.kill()
        proc.wait()


def test_pidfile_keeps_wait_exit_for_drivers() -> None:
    assert pidfile.wait_exit is processes.wait_exit  # public SDK since 0.1 (docs/authors.md)
