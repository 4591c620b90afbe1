"""Writing a file so that a reader sees the old content or the new, never a part of it.

The content goes to a temporary file beside the target (the same directory,
so the same file system), ``.<name>.<pid>.<thread>.tmp``, which then replaces
the target in one rename (``os.replace``). A failure removes the temporary
file and leaves the target as it was. One left behind by a process that was
killed ends in ``.tmp``, which ``lima stop -f`` removes from an instance
directory.

``mode`` gives the file those permissions (else a new file's, under the
umask). ``sync`` puts the content and the rename on disk before returning:
for a file whose loss in a power failure costs more than the flush (a
converted disk whose source is deleted next, a VM's identity). Most files
here (pid files, caches, ``ssh.config``) are rewritten by the next command
anyway and do without.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path


def write(path: str | os.PathLike[str], data: str | bytes, *, mode: int | None = None, sync: bool = False) -> None:
    """Replace *path* with *data* (text is written as UTF-8)."""
    with replacing(path, mode=mode, sync=sync) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], *, mode: int | None = None, sync: bool = False) -> Iterator[Path]:
    """A temporary path to write the new *path* at, by any means (a copy, ``qemu-img convert``).

    When the block ends without an error the file there replaces *path*;
    when it raises, the file is removed and *path* is left as it was.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    _remove(tmp)  # left by an earlier process that had this pid
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        if sync:
            _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    if sync:
        _fsync_dir(target.parent)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; systems that cannot open a directory (Windows) do without."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
