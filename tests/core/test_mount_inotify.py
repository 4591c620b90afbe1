"""mountInotify on the host agent's side: the recursive watcher, the host-to-guest path mapping, and the
guest-side loop (run here by a local sh in place of ssh). In a real guest: tests/e2e/test_cloud_guest_mounts.py."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from lima_core import sshutil
from lima_core.hostagent import inotify
from lima_core.mounts import ResolvedMount

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux inotify")


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.cond = threading.Condition()

    def __call__(self, path: str, mtime: int) -> None:
        with self.cond:
            self.seen.append((path, mtime))
            self.cond.notify_all()

    def wait_for(self, path: Path, timeout: float = 5.0) -> int:
        with self.cond:
            assert self.cond.wait_for(lambda: any(p == str(path) for p, _ in self.seen), timeout), self.seen
            return [m for p, m in self.seen if p == str(path)][-1]


@pytest.fixture
def watched(tmp_path: Path):
    (tmp_path / "old").mkdir()
    events = Events()
    watcher = inotify.Watcher([str(tmp_path)], events)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    yield tmp_path, events
    watcher.close()
    thread.join(5)
    assert not thread.is_alive()


def test_watches_the_tree_and_new_directories(watched) -> None:
    root, events = watched
    (root / "a.txt").write_text("1")
    assert events.wait_for(root / "a.txt") == (root / "a.txt").stat().st_mtime_ns
    (root / "old" / "b.txt").write_text("2")  # a directory that existed
    events.wait_for(root / "old" / "b.txt")
    (root / "new" / "deep").mkdir(parents=True)  # directories made after the start are watched too
    time.sleep(0.2)
    (root / "new" / "deep" / "c.txt").write_text("3")
    events.wait_for(root / "new" / "deep" / "c.txt")


def test_a_time_already_sent_is_not_sent_again(watched) -> None:
    """Setting a file's times to what they are (the guest replaying a change through the mount) is no
    new change: nothing echoes back."""
    root, events = watched
    f = root / "f"
    f.write_text("x")
    events.wait_for(f)
    time.sleep(0.3)  # the write's last events
    mtime = f.stat().st_mtime_ns
    count = len(events.seen)
    os.utime(f, ns=(mtime, mtime))
    (root / "marker").write_text("m")
    events.wait_for(root / "marker")
    assert str(f) not in [p for p, _ in events.seen[count:]]
    os.utime(f, ns=(mtime + 10**9, mtime + 10**9))  # a real change of the time is sent
    with events.cond:
        assert events.cond.wait_for(lambda: events.seen[-1] == (str(f), mtime + 10**9), 5)


def test_guest_path_uses_the_longest_location() -> None:
    ms = [ResolvedMount(0, "/home/me", "/mnt/home", True, "t0", "9p"),
          ResolvedMount(1, "/home/me/src", "/src", True, "t1", "9p")]
    assert inotify.guest_path(ms, "/home/me/a") == "/mnt/home/a"
    assert inotify.guest_path(ms, "/home/me/src/b/c") == "/src/b/c"
    assert inotify.guest_path(ms, "/home/me/src") == "/src"
    assert inotify.guest_path(ms, "/home/meow") is None


def test_replayer_sets_the_times_in_the_guest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guest's loop, run by a local sh (standing in for ssh to the guest): each path gets its time."""
    runner = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[2], shell=True))"]
    monkeypatch.setattr(sshutil, "command", lambda *a, **kw: list(runner))
    files = [tmp_path / "plain", tmp_path / "with space", tmp_path / "missing"]
    for f in files[:2]:
        f.write_text("x")
    replayer = inotify.Replayer(tmp_path, "x")
    when = 1_700_000_000_123_456_789
    try:
        for f in files:
            replayer.send(str(f), when)
        replayer.send(str(tmp_path / "new\nline"), when)  # not sendable as a line: skipped
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(f.stat().st_mtime_ns != when for f in files[:2]):
            time.sleep(0.05)
    finally:
        replayer.close()
    assert [f.stat().st_mtime_ns for f in files[:2]] == [when, when]
    assert not files[2].exists()  # touch -c: nothing created
