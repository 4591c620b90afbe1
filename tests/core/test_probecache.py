"""lima_core.probecache: answers about a binary kept across processes, and forgotten when they may be stale."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lima_core import probecache
from lima_core.probecache import ProbeCache


@pytest.fixture
def exe(tmp_path: Path) -> Path:
    path = tmp_path / "qemu-system-x86_64"
    path.write_text("#!/bin/sh\n")
    return path


def test_an_answer_survives_a_new_cache_object(tmp_path: Path, exe: Path) -> None:
    cache = ProbeCache("probe.json", directory=tmp_path / "c")
    key = cache.key(str(exe), "host")
    assert cache.get(key) is None
    cache.update(key, {"ok": True})
    cache.update(key, {"detail": "fine"})  # merged into the entry
    again = ProbeCache("probe.json", directory=tmp_path / "c")
    entry = again.get(again.key(str(exe), "host"))
    assert entry is not None and entry["ok"] is True and entry["detail"] == "fine"


def test_the_default_place_is_limas_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exe: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = ProbeCache("probe.json")
    cache.update(cache.key(str(exe)), {"ok": True})
    assert (tmp_path / "xdg" / "lima" / "probe.json").is_file()


def test_the_key_follows_the_binary_and_what_else_is_asked(tmp_path: Path, exe: Path) -> None:
    cache = ProbeCache("probe.json", directory=tmp_path)
    key = cache.key(str(exe), "host")
    assert cache.key(str(exe), "host") == key
    assert cache.key(str(exe), "max") != key
    link = tmp_path / "qemu"
    link.symlink_to(exe)
    assert cache.key(str(link), "host") == key  # the same binary under another name
    assert ProbeCache("probe.json", version=2, directory=tmp_path).key(str(exe), "host") != key
    exe.write_text("#!/bin/sh\n# rebuilt\n")
    later = time.time() + 5
    os.utime(exe, (later, later))
    assert cache.key(str(exe), "host") != key
    with pytest.raises(OSError):
        cache.key(str(tmp_path / "missing"))


def test_boot_keys_change_with_the_boot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exe: Path) -> None:
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("one\n")
    monkeypatch.setattr(probecache, "BOOT_ID", str(boot_id))
    cache = ProbeCache("probe.json", directory=tmp_path)
    first = cache.key(str(exe), boot=True)
    assert first != cache.key(str(exe))
    boot_id.write_text("two\n")
    assert cache.key(str(exe), boot=True) != first


def test_only_the_newest_entries_are_kept(tmp_path: Path, exe: Path) -> None:
    cache = ProbeCache("probe.json", max_entries=3, directory=tmp_path)
    keys = [cache.key(str(exe), n) for n in range(5)]
    for key in keys:
        cache.update(key, {"n": key})
    assert [cache.get(k) is not None for k in keys] == [False, False, True, True, True]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"k": "not an entry"}'])
def test_a_bad_file_counts_as_empty_and_is_rewritten(tmp_path: Path, exe: Path, content: str) -> None:
    (tmp_path / "probe.json").write_text(content)
    cache = ProbeCache("probe.json", directory=tmp_path)
    assert cache.get("k") is None
    key = cache.key(str(exe))
    cache.update(key, {"ok": False})
    assert json.loads((tmp_path / "probe.json").read_text())[key]["ok"] is False


def test_an_unwritable_cache_is_only_slower(tmp_path: Path, exe: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = ProbeCache("probe.json", directory=blocker / "sub")  # a directory that cannot exist
    cache.update(cache.key(str(exe)), {"ok": True})  # no error
    assert cache.get(cache.key(str(exe))) is None
