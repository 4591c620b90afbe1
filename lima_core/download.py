"""Fetching images, kernels and initrds into an instance directory.

Remote files are cached as Lima caches them: under
``<cache>/download/by-url-sha256/<sha256(url)>/`` with ``url``, ``data`` and
``<algo>.digest``, so a second instance of the same image costs no download.
Local paths and ``file://`` URLs are copied (and work offline). A digest
(``sha256:<hex>``, ``sha512:<hex>``) is checked whenever the template gives one.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from . import atomicfile, dirnames
from .errors import LimaError

#: progress(label, done_bytes, total_bytes_or_None)
Progress = Callable[[str, int, "int | None"], None]
CHUNK = 1 << 20
_DECOMPRESSORS = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}


class DownloadError(LimaError):
    """A file could not be fetched, or its digest did not match."""


def is_remote(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def local_path(location: str) -> Path:
    if location.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(location).path))
    return Path(os.path.expanduser(location))


def cache_entry(url: str) -> Path:
    return dirnames.cache_dir() / "download" / "by-url-sha256" / hashlib.sha256(url.encode()).hexdigest()


def _parse_digest(digest: str | None) -> tuple[str, str] | None:
    if not digest:
        return None
    algo, _, value = digest.partition(":")
    if algo not in ("sha256", "sha512") or not value:
        raise DownloadError(f"digest {digest!r} is not of the form sha256:<hex> or sha512:<hex>")
    return algo, value.lower()


def _file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, digest: tuple[str, str] | None, location: str) -> None:
    if digest is None:
        return
    algo, want = digest
    got = _file_digest(path, algo)
    if got != want:
        raise DownloadError(f"{location}: {algo} digest mismatch (expected {want}, got {got}); the file may be "
                            "corrupt or the template's digest out of date")


def fetch(location: str, dest: Path, *, digest: str | None = None, decompress: bool = False,
          progress: Progress | None = None) -> Path:
    """Put the file at *location* into *dest* (atomically), checking *digest*."""
    want = _parse_digest(digest)
    if is_remote(location):
        source = _cached(location, want, progress)
    else:
        source = local_path(location)
        if not source.is_file():
            raise DownloadError(f"{location} does not exist (or is not a file)")
        _verify(source, want, location)
    opener = _DECOMPRESSORS.get(Path(urllib.parse.urlparse(location).path).suffix) if decompress else None
    try:
        with atomicfile.replacing(dest) as tmp:
            if opener is not None:
                with opener(source, "rb") as src, open(tmp, "wb") as out:  # type: ignore[operator]
                    shutil.copyfileobj(src, out, CHUNK)
            else:
                _copy(source, tmp, location, progress if not is_remote(location) else None)
    except OSError as exc:
        raise DownloadError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    except (EOFError, lzma.LZMAError, gzip.BadGzipFile) as exc:
        raise DownloadError(f"cannot decompress {location}: {exc}") from exc
    return dest


def locate(location: str, *, digest: str | None = None, progress: Progress | None = None,
           offline: bool = False) -> Path:
    """The file at *location* on this host, checked against *digest*, without copying it: a local file
    itself, a remote one from the download cache (downloaded first, unless *offline*)."""
    want = _parse_digest(digest)
    if not is_remote(location):
        source = local_path(location)
        if not source.is_file():
            raise DownloadError(f"{location} does not exist (or is not a file)")
        _verify(source, want, location)
        return source
    if offline:
        entry = cache_entry(location)
        data = entry / "data"
        if data.exists() and (want is None or _cached_digest_ok(entry, data, want)):
            return data
        raise DownloadError(f"{location} is not in the download cache")
    return _cached(location, want, progress)


def _copy(source: Path, dest: Path, label: str, progress: Progress | None) -> None:
    total = source.stat().st_size
    if progress is None:
        shutil.copyfile(source, dest)
        return
    done = 0
    with open(source, "rb") as src, open(dest, "wb") as out:
        while chunk := src.read(CHUNK * 8):
            out.write(chunk)
            done += len(chunk)
            progress(label, done, total)


def _cached(url: str, want: tuple[str, str] | None, progress: Progress | None) -> Path:
    entry = cache_entry(url)
    data = entry / "data"
    if data.exists():
        if want is None or _cached_digest_ok(entry, data, want):
            return data
    entry.mkdir(parents=True, exist_ok=True)
    with atomicfile.replacing(data) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - http(s) only
                total = int(resp.headers.get("Content-Length") or 0) or None
                done = 0
                with open(tmp, "wb") as out:
                    while chunk := resp.read(CHUNK):
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(url, done, total)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise DownloadError(f"cannot download {url}: {reason}") from None
        _verify(tmp, want, url)
    (entry / "url").write_text(url)
    if want is not None:
        (entry / f"{want[0]}.digest").write_text(f"{want[0]}:{want[1]}")
    return data


def conform(image: Path, formats: list[str], location: str) -> str | None:
    """Make the fetched *image* one of the driver's *formats* (``DriverFeatures.supported_image_formats``).

    As Lima's downloader does: an empty list takes every format; an ISO 9660
    image is kept (drivers make it the ``iso``); any other format the driver
    does not list is converted to raw, which the driver must list. A remote
    image's conversion is cached beside its download (``imgconv/raw``), so the
    next instance of it is not converted again. Returns the format converted
    from, or None.
    """
    from . import imageformat

    if not formats:
        return None
    fmt = imageformat.detect(image)
    if fmt in formats or fmt == imageformat.ISO9660:
        return None
    if "raw" not in formats:
        raise DownloadError(f"{location} is a {fmt} image; the driver takes only {', '.join(formats)} "
                            "(its DriverFeatures.supported_image_formats), and converting is only possible to raw")
    entry = cache_entry(location) if is_remote(location) else None
    cached = entry / "imgconv" / "raw" if entry is not None else None
    try:
        if cached is not None and entry is not None and cached.is_file() and \
                cached.stat().st_mtime >= (entry / "data").stat().st_mtime:
            _copy_into(cached, image)
            return fmt
        imageformat.convert_to_raw(image, image, fmt)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            _copy_into(image, cached)
    except imageformat.ImageFormatError as exc:
        raise DownloadError(exc.message) from None
    except OSError as exc:
        raise DownloadError(f"cannot convert {location} to raw: {exc.strerror or exc}") from exc
    return fmt


def _copy_into(source: Path, dest: Path) -> None:
    with atomicfile.replacing(dest) as tmp:
        shutil.copyfile(source, tmp)


def _cached_digest_ok(entry: Path, data: Path, want: tuple[str, str]) -> bool:
    recorded = entry / f"{want[0]}.digest"
    if recorded.exists() and recorded.read_bytes().strip() == f"{want[0]}:{want[1]}".encode():
        return True
    try:
        _verify(data, want, str(data))
    except DownloadError:
        return False
    recorded.write_text(f"{want[0]}:{want[1]}")
    return True
