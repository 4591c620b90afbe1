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


# -- DriverFeatures.supported_image_formats: images a driver does not take become raw -----------------


def _qcow2(tmp_path: Path, content: bytes) -> Path:
    """A qcow2 image holding *content* (made with qemu-img from a raw file)."""
    import shutil
    import subprocess

    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is needed to make a qcow2 image")
    raw = tmp_path / "src.raw"
    raw.write_bytes(content)
    out = tmp_path / "src.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)], check=True)
    return out


CONTENT = b"BOOT" * 16384  # 64 KiB, a whole number of sectors


def test_image_formats_are_told_by_their_magic(tmp_path: Path) -> None:
    from lima_core import imageformat

    cases = {"qcow2": b"QFI\xfb" + bytes(100), "vmdk": b"KDMV" + bytes(100), "vhdx": b"vhdxfile" + bytes(100),
             "vdi": bytes(0x40) + b"\x7f\x10\xda\xbe" + bytes(100), "iso": bytes(0x8001) + b"CD001" + bytes(10),
             "raw": b"\xeb\x63\x90" + bytes(100)}
    for fmt, head in cases.items():
        (tmp_path / fmt).write_bytes(head)
        assert imageformat.detect(tmp_path / fmt) == fmt


def test_a_format_the_driver_does_not_take_is_converted_to_raw(tmp_path: Path) -> None:
    image = tmp_path / "image"
    image.write_bytes(_qcow2(tmp_path, CONTENT).read_bytes())
    assert download.conform(image, ["qcow2", "raw"], "x.qcow2") is None  # taken as it is
    assert image.read_bytes()[:4] == b"QFI\xfb"
    assert download.conform(image, [], "x.qcow2") is None  # no list: every format
    assert download.conform(image, ["raw", "asif"], "x.qcow2") == "qcow2"
    assert image.read_bytes() == CONTENT
    assert not list(tmp_path.glob(".image*"))


def test_an_iso_is_never_converted(tmp_path: Path) -> None:
    image = tmp_path / "image"
    image.write_bytes(bytes(0x8001) + b"CD001" + bytes(2043))
    assert download.conform(image, ["raw"], "x.iso") is None


def test_a_format_that_cannot_become_one_the_driver_takes_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "image"
    image.write_bytes(b"QFI\xfb" + bytes(1000))
    with pytest.raises(download.DownloadError, match=r"x\.qcow2 is a qcow2 image; the driver takes only asif "
                                                     r"\(its DriverFeatures.supported_image_formats\)"):
        download.conform(image, ["asif"], "x.qcow2")


def test_without_qemu_img_the_error_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "image"
    image.write_bytes(b"QFI\xfb" + bytes(1000))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(download.DownloadError, match="needs qemu-img; it is not on PATH .*qemu-utils"):
        download.conform(image, ["raw"], "x.qcow2")


def test_a_remote_images_conversion_is_cached(server, tmp_path: Path, cache: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from lima_core import imageformat

    base, hits = server
    www = tmp_path / "www"
    (www / "disk.qcow2").write_bytes(_qcow2(tmp_path, CONTENT).read_bytes())
    url = f"{base}/disk.qcow2"
    calls: list[Path] = []
    real = imageformat.convert_to_raw
    monkeypatch.setattr(imageformat, "convert_to_raw", lambda *a: (calls.append(a[0]), real(*a)))
    for inst in ("a", "b"):
        dest = tmp_path / inst / "image"
        dest.parent.mkdir()
        download.fetch(url, dest)
        assert download.conform(dest, ["raw"], url) == "qcow2"
        assert dest.read_bytes() == CONTENT
    assert len(calls) == 1 and hits == ["/disk.qcow2"]  # downloaded once, converted once
    assert (download.cache_entry(url) / "imgconv" / "raw").read_bytes() == CONTENT
