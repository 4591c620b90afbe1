"""Pid files: identity records, Lima-written files, stale numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lima_core import pidfile


def test_round_trip_and_identity(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        path = tmp_path / "x.pid"
        pidfile.write(path, proc.pid)
        assert path.read_text() == f"{proc.pid}\n"  # the number alone, as Lima writes it
        status = pidfile.read(path)
        assert status.alive and status.pid == proc.pid
    finally:
        proc.kill()
        proc.wait()
    assert not pidfile.read(path).alive
    assert not path.exists()  # pruned once the process is gone


def test_lima_written_file_needs_matching_cmdline(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        path = tmp_path / "qemu.pid"
        path.write_text(str(proc.pid))
        assert pidfile.read(path, expect="sleep").alive
        status = pidfile.read(path, expect="qemu-system")
        assert not status.alive and "is not qemu-system" in status.reason
        assert path.exists()  # an unrelated live process's number: left alone, file kept
    finally:
        proc.kill()
        proc.wait()


def test_garbage_and_missing(tmp_path: Path) -> None:
    assert pidfile.read(tmp_path / "none.pid") == pidfile.PidStatus()
    bad = tmp_path / "bad.pid"
    bad.write_text("hello")
    assert "does not hold a process id" in pidfile.read(bad).reason
