"""lima_core.atomicfile: the old content or the new, never a part; no temporary file left behind."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from lima_core import atomicfile


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_text_and_bytes(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomicfile.write(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    atomicfile.write(target, b"\x00\x01", sync=True)
    assert target.read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path) == []


def test_mode_is_applied_else_the_umask_decides(tmp_path: Path) -> None:
    atomicfile.write(tmp_path / "exe", "#!/bin/sh\n", mode=0o755)
    assert stat.S_IMODE((tmp_path / "exe").stat().st_mode) == 0o755
    old = os.umask(0o027)
    try:
        atomicfile.write(tmp_path / "plain", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o640


def test_a_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "disk"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomicfile.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the converter failed")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_replacing_hands_a_path_to_any_writer(tmp_path: Path) -> None:
    target = tmp_path / "disk"
    with atomicfile.replacing(target, mode=0o600, sync=True) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".disk.") and tmp.name.endswith(".tmp")
        assert not target.exists()  # nothing is visible before the block ends
        tmp.write_bytes(b"converted")
    assert target.read_bytes() == b"converted"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_a_leftover_of_a_dead_process_with_our_pid_is_replaced(tmp_path: Path) -> None:
    stale = tmp_path / f".f.{os.getpid()}.{threading.get_ident()}.tmp"
    stale.write_text("stale and longer than the new content")
    atomicfile.write(tmp_path / "f", "new")
    assert (tmp_path / "f").read_text() == "new"
    assert leftovers(tmp_path) == []


def test_threads_writing_one_file_never_show_a_mix(tmp_path: Path) -> None:
    target = tmp_path / "cache.json"
    contents = [bytes([65 + i]) * 200_000 for i in range(4)]
    atomicfile.write(target, contents[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    def write(data: bytes) -> None:
        for _ in range(20):
            atomicfile.write(target, data)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(c,)) for c in contents]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert seen <= set(contents)
    assert leftovers(tmp_path) == []
