"""What the test-guest builders share (scripts/build-test-guest, scripts/build-cloud-guest).

The cache: a build lives in ``<out>/<key>/``, where ``<key>`` is the sha256 of a JSON
document of its inputs (the builder's sources, what Debian served, the package lists...).
:func:`build_cached` takes ``<out>/.lock`` so one builder runs at a time per cache, builds
into a temporary ``<out>/.build-*`` directory and renames it to ``<key>`` only when it is
complete (``manifest.json`` is written last), so a finished key directory is never rebuilt
and never half there. ``<out>/current`` points at the latest key. Progress goes to stderr;
the script prints the key directory as its last line on stdout.

Also here: running commands so that an interruption kills them, hashing files, and
uncompressing Debian's kernel for direct boot.

Python 3.11 standard library only: the scripts run before the virtualenv has anything.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

PROG = Path(sys.argv[0]).name
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
XZ_MAGIC = b"\xfd7zXZ\x00"


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def fail(msg: str) -> NoReturn:
    raise SystemExit(f"{PROG}: {msg}")


def run(cmd: list[str], capture: bool = False, logfile: Path | None = None, input: str | None = None,
        **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(check=True), except that an interruption kills the command's whole
    process group (dpkg-deb's helpers, debootstrap's chroot) instead of leaving it writing
    into the build directory.

    :param capture: return stdout and stderr (stderr is shown if the command fails).
    :param logfile: append stdout and stderr to this file; its tail is shown on failure.
    :param input: text for the command's stdin.
    """
    if capture:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if input is not None:
        kwargs.update(stdin=subprocess.PIPE)
    log_handle = None
    if logfile is not None:
        log_handle = logfile.open("a")
        log_handle.write(f"$ {' '.join(cmd)}\n")
        log_handle.flush()
        kwargs.update(stdout=log_handle, stderr=subprocess.STDOUT)
    try:
        with subprocess.Popen(cmd, text=True, start_new_session=True, **kwargs) as p:
            try:
                out, err = p.communicate(input)
            except BaseException:
                os.killpg(p.pid, signal.SIGKILL)
                raise
    finally:
        if log_handle is not None:
            log_handle.close()
    if p.returncode:
        if err:
            sys.stderr.write(err)
        if logfile is not None:
            tail = logfile.read_text(errors="replace").splitlines()[-30:]
            sys.stderr.write("".join(f"  | {line}\n" for line in tail))
            fail(f"{cmd[0]} exited with {p.returncode} (full output in {logfile})")
        fail(f"{' '.join(cmd)} exited with {p.returncode}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sources_sha256(*paths: Path) -> dict[str, str]:
    """sha256 of each builder source, keyed by its path relative to the repository."""
    return {p.resolve().relative_to(REPO).as_posix(): sha256_file(p) for p in paths}


def extract_vmlinux(vmlinuz: bytes) -> bytes | None:
    """The ELF kernel inside a bzImage whose payload is xz; None if there is none.

    QEMU boots an ELF kernel directly (PVH), which skips the decompression a bzImage
    does first: seconds under TCG.
    """
    start = vmlinuz.find(XZ_MAGIC)
    while start != -1:
        try:
            data = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(vmlinuz[start:])
        except lzma.LZMAError:
            data = b""
        if data.startswith(b"\x7fELF"):
            return data
        start = vmlinuz.find(XZ_MAGIC, start + 1)
    return None


def parse_args(description: str, default_out: Path) -> argparse.Namespace:
    """--out and --force, common to both builders; SIGTERM then unwinds like Ctrl-C (the
    running command is killed and the temporary build directory removed)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", type=Path, default=default_out,
                    help=f"cache directory (default: {default_out.relative_to(REPO)} in the repository)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the key is cached")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.out = args.out.resolve()
    return args


def write_manifest(dest: Path, manifest: dict) -> None:
    """manifest.json, the last file of a build; ``sizes`` lists every other file."""
    manifest = dict(manifest, sizes={p.name: p.stat().st_size for p in sorted(dest.iterdir())})
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def build_cached(out: Path, inputs: Callable[[], dict], build: Callable[[Path, Path, str, dict], None],
                 force: bool = False) -> Path:
    """The key directory for ``inputs()``, built by ``build(work, dest, key, inputs)`` if needed.

    ``inputs`` runs under the lock (it may use files in *out*). ``build`` fills *dest* and
    writes manifest.json last; *work* is scratch space removed afterwards.
    """
    out.mkdir(parents=True, exist_ok=True)
    # One builder at a time per cache dir; a second one waits, then finds the build cached.
    with (out / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = inputs()
        key = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        final = out / key
        if (final / "manifest.json").exists() and not force:
            log(f"cached: {final}")
        else:
            for stale in out.glob(".build-*"):  # left by an interrupted build
                remove_tree(stale)
            t0 = time.monotonic()
            work = Path(tempfile.mkdtemp(dir=out, prefix=f".build-{key[:12]}-"))
            try:
                dest = work / "result"
                dest.mkdir()
                build(work, dest, key, data)
                if final.exists():  # --force over an existing build
                    shutil.rmtree(final)
                os.rename(dest, final)
            finally:
                remove_tree(work)
            log(f"built {final} in {time.monotonic() - t0:.1f} s")
        _replace_symlink(out / "current", key)
    return final


def _mounts_below(path: Path) -> list[str]:
    """Mount points at or below *path* (from /proc/self/mountinfo), deepest first."""
    root = os.path.realpath(path)
    found = []
    with contextlib.suppress(FileNotFoundError), open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            for esc in ("\\040", "\\011", "\\012", "\\134"):
                point = point.replace(esc, chr(int(esc[1:], 8)))
            if point == root or point.startswith(root + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """Remove a build directory, unmounting first whatever a chroot left mounted in it
    (an interrupted debootstrap leaves /proc, /sys, maybe /dev there: deleting through
    them would delete the host's files)."""
    if not path.exists():
        return
    for point in _mounts_below(path):
        subprocess.run(["umount", "--lazy", point], stderr=subprocess.DEVNULL)
    left = _mounts_below(path)
    if left:
        fail(f"cannot unmount {', '.join(left)}; unmount it and remove {path} by hand")
    shutil.rmtree(path, ignore_errors=True)


def _replace_symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)
