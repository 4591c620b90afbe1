"""Image downloads: the cache keyed by the URL's sha256, digests, local files, failures."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lima_core import download


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "disk.img").write_bytes(b"IMAGE" * 1000)
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    srv.shutdown()


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "lima"


def test_second_fetch_of_a_url_comes_from_the_cache(server, tmp_path: Path, cache: Path) -> None:
    base, hits = server
    url = f"{base}/disk.img"
    digest = "sha256:" + hashlib.sha256(b"IMAGE" * 1000).hexdigest()
    seen: list[tuple[int, int | None]] = []
    download.fetch(url, tmp_path / "a", digest=digest, progress=lambda _l, d, t: seen.append((d, t)))
    download.fetch(url, tmp_path / "b", digest=digest)
    assert hits == ["/disk.img"]
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == b"IMAGE" * 1000
    entry = cache / "download" / "by-url-sha256" / hashlib.sha256(url.encode()).hexdigest()
    assert (entry / "url").read_text() == url
    assert (entry / "sha256.digest").read_text() == digest
    assert seen[-1] == (5000, 5000)


def test_digest_mismatch_is_an_error_and_caches_nothing(server, tmp_path: Path, cache: Path) -> None:
    base, _hits = server
    with pytest.raises(download.DownloadError, match="sha256 digest mismatch"):
        download.fetch(f"{base}/disk.img", tmp_path / "a", digest="sha256:" + "0" * 64)
    assert not (tmp_path / "a").exists()
    assert not list(cache.rglob("data"))


def test_missing_url_and_bad_digest_form(server, tmp_path: Path) -> None:
    base, _hits = server
    with pytest.raises(download.DownloadError, match="cannot download .*nothere.img"):
        download.fetch(f"{base}/nothere.img", tmp_path / "a")
    with pytest.raises(download.DownloadError, match="is not of the form sha256"):
        download.fetch(f"{base}/disk.img", tmp_path / "a", digest="md5:abc")


def test_local_and_file_urls_work_offline(tmp_path: Path) -> None:
    src = tmp_path / "local.img"
    src.write_bytes(b"L" * 10)
    download.fetch(str(src), tmp_path / "a")
    download.fetch(f"file://{src}", tmp_path / "b", digest="sha256:" + hashlib.sha256(b"L" * 10).hexdigest())
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == b"L" * 10
    with pytest.raises(download.DownloadError, match="does not exist"):
        download.fetch(str(tmp_path / "nope"), tmp_path / "c")


def test_compressed_kernel_is_decompressed(tmp_path: Path) -> None:
    import gzip

    src = tmp_path / "vmlinuz.gz"
    src.write_bytes(gzip.compress(b"KERNEL"))
    download.fetch(str(src), tmp_path / "kernel", decompress=True)
    assert (tmp_path / "kernel").read_bytes() == b"KERNEL"


def test_full_disk_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import shutil

    src = tmp_path / "local.img"
    src.write_bytes(b"x")

    def enospc(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", enospc)
    with pytest.raises(download.DownloadError, match="No space left on device"):
        download.fetch(str(src), tmp_path / "dest")
    assert not list(tmp_path.glob(".dest*"))
