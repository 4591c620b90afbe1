"""Pid files: identity records, Lima-written files, stale numbers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

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
        # Popen returns once exec has begun; the kernel sets the new command line a moment later.
        deadline = time.monotonic() + 10
        while "sleep" not in " ".join(psutil.Process(proc.pid).cmdline()) and time.monotonic() < deadline:
            time.sleep(0.01)
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


def test_lima_written_file_must_name_the_owner_dir(tmp_path: Path) -> None:
    mine, other = tmp_path / "a", tmp_path / "ab"
    # another instance's driver, as it looks
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "sleep", f"--inst-dir={other}"])
    try:
        path = tmp_path / "x.pid"
        path.write_text(str(proc.pid))
        status = pidfile.read(path, expect="sleep", owner=mine)
        assert not status.alive and f"does not serve {mine}" in status.reason
        assert pidfile.read(path, expect="sleep", owner=other).alive
    finally:
        proc.kill()
        proc.wait()


def test_names_dir_matches_whole_path_components() -> None:
    d = Path("/h/a")
    assert pidfile.names_dir(["qemu", "-pidfile", "/h/a/qemu.pid"], d)
    assert pidfile.names_dir(["q", "-drive", "file=/h/a/disk,if=virtio"], d)
    assert pidfile.names_dir(["drv", "--inst-dir", "/h/a"], d)
    assert not pidfile.names_dir(["drv", "--inst-dir", "/h/ab"], d)
    assert not pidfile.names_dir(["drv", "/x/h/a"], d)


def test_copied_identity_is_not_ours(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        pidfile.write(tmp_path / "a" / "ha.pid", proc.pid)
        for name in ("ha.pid", "ha.pid.identity"):  # `cp -r a b` while a runs
            (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
        status = pidfile.read(tmp_path / "b" / "ha.pid")
        assert not status.alive and "was copied from" in status.reason
        assert pidfile.read(tmp_path / "a" / "ha.pid").alive
    finally:
        proc.kill()
        proc.wait()
