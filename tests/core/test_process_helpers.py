"""lima_core.processes: ending processes, waiting for them, saying how they ended."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from lima_core import pidfile, processes
from lima_core.errors import SignalDenied


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


def sleeper(*extra: str) -> subprocess.Popen:
    code = "import signal, sys, time\n" + "".join(f"{line}\n" for line in extra) + "print('up', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"  # its signal handlers are in place
    return proc


def test_kill_a_child_reaps_it() -> None:
    proc = sleeper()
    assert processes.kill(proc, 10)
    assert proc.returncode == -signal.SIGKILL
    assert processes.kill(proc, 10)  # gone already: still true, nothing raised


def test_kill_a_found_process_leaves_the_status_to_its_owner() -> None:
    proc = sleeper()
    assert processes.kill(psutil.Process(proc.pid), 10)
    assert proc.wait(5) == -signal.SIGKILL


def test_terminate_is_sigterm_first() -> None:
    proc = sleeper()
    assert processes.terminate(proc, 10)
    assert processes.describe_exit(proc.returncode) == "was killed by SIGTERM"


def test_terminate_kills_what_ignores_sigterm() -> None:
    proc = sleeper("signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    found = psutil.Process(proc.pid)
    assert processes.terminate(found, 0.3)
    assert proc.wait(5) == -signal.SIGKILL


def test_kill_reports_a_process_it_may_not_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = sleeper()
    try:
        found = psutil.Process(proc.pid)

        def denied() -> None:
            raise psutil.AccessDenied(proc.pid)

        monkeypatch.setattr(found, "kill", denied)
        with pytest.raises(SignalDenied, match=f"not allowed to signal process {proc.pid}"):
            processes.kill(found)
    finally:
        proc.kill()
        proc.wait()


def test_tail_keeps_the_last_non_blank_lines() -> None:
    assert processes.tail("a\n\n  b  \nc\n\n", 2) == "b | c"
    assert processes.tail("", 3) == ""


def test_log_tail_reads_from_an_offset(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_bytes(b"old run\nold error\n")
    start = log.stat().st_size
    with open(log, "ab") as f:
        f.write(b"new 1\n\nnew 2\n\xff bad byte\n")
    assert processes.log_tail(log) == "old run | old error | new 1 | new 2 | \ufffd bad byte"
    assert processes.log_tail(log, start, lines=2) == "new 2 | \ufffd bad byte"
    assert processes.log_tail(tmp_path / "missing.log") == ""


def test_log_tail_of_a_long_log_reads_only_its_end(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"x" * (processes.TAIL_BYTES * 3) + b"\nlast words\n")
    assert processes.log_tail(log, lines=5) == "last words"  # the cut first line is not shown
