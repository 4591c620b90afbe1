"""``lima clone`` and ``lima rename`` (Lima's ``instance.CloneOrRename``).

The instance must be stopped. Clone copies its directory file by file (disks sparse: holes
stay holes), leaving out what belongs to a running instance (``*.pid``, ``*.sock``,
``*.tmp``) and Lima's ``SkipOnClone`` (``protected``, ``swtpm``); ``vz-identifier`` is
written empty (vz makes a new machine identity). Rename moves the directory in one step
and keeps everything, protection included. Either holds the instance's lock, so it
cannot start meanwhile; a clone that fails removes what it made, and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from . import dirnames, filenames, store
from .errors import InstanceError, InstanceExists
from .limatype import STATUS_STOPPED, Instance

SKIP_ON_CLONE = (filenames.PROTECTED, "swtpm")
NULLIFY_ON_CLONE = (filenames.VZ_IDENTIFIER,)
_COPY_CHUNK = 1 << 20


def clone_or_rename(old: str, new: str, *, rename: bool) -> Instance:
    from . import disks, instance

    verb = "rename" if rename else "clone"
    old_dir = store.existing_dir(old)
    store.validate_name(new)
    if new == old:
        raise InstanceError(f"the new name must differ from {old!r}")
    new_dir = dirnames.instance_dir(new)
    with instance.instance_lock(old_dir, timeout=30, what=f"{verb}d"):
        inst = store.inspect(old, driver_status=False)
        if inst.status != STATUS_STOPPED:
            raise InstanceError(f"cannot {verb} instance {old!r}: it is {inst.status or 'in an unknown state'}; "
                                f"run `lima stop {old}` first")
        if new_dir.exists():
            raise InstanceExists(f"instance {new!r} already exists; choose another name or `lima delete {new}` first")
        if rename:
            disks.unlock_all(old_dir)
            for entry in old_dir.iterdir():
                if entry.name.endswith(filenames.TMP_FILE_SUFFIXES) and entry.name != instance.INSTANCE_LOCK:
                    with contextlib.suppress(FileNotFoundError):
                        entry.unlink()
            os.rename(old_dir, new_dir)
        else:
            try:
                os.mkdir(new_dir, 0o700)
                _copy_tree(old_dir, new_dir)
            except BaseException:
                shutil.rmtree(new_dir, ignore_errors=True)
                raise
    return store.inspect(new, driver_status=False)


def _skipped(name: str) -> bool:
    from .instance import INSTANCE_LOCK

    return name in SKIP_ON_CLONE or name.endswith(filenames.TMP_FILE_SUFFIXES + (filenames.PID_IDENTITY_SUFFIX,)) \
        or name == INSTANCE_LOCK


def _copy_tree(src: Path, dst: Path) -> None:
    for entry in sorted(src.iterdir()):
        if _skipped(entry.name):
            continue
        target = dst / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            target.mkdir(mode=entry.stat().st_mode & 0o777)
            _copy_tree(entry, target)
        elif entry.name in NULLIFY_ON_CLONE:
            target.write_bytes(b"")
        elif entry.is_file():
            copy_sparse(entry, target)


def copy_sparse(src: Path, dst: Path) -> None:
    """Copy a file keeping its holes (a 100 GiB raw disk that holds 1 GiB copies as 1 GiB), and its mode."""
    size = src.stat().st_size
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        seek_data = getattr(os, "SEEK_DATA", None)
        seek_hole = getattr(os, "SEEK_HOLE", None)
        pos = 0
        while pos < size:
            if seek_data is not None and seek_hole is not None:
                try:
                    start = os.lseek(fin.fileno(), pos, seek_data)
                    end = os.lseek(fin.fileno(), start, seek_hole)
                except OSError:  # no data after pos (ENXIO), or no hole support: copy the rest
                    if pos == 0 or size - pos > 0 and _has_data_after(fin, pos):
                        start, end = pos, size
                    else:
                        break
            else:
                start, end = pos, size
            fin.seek(start)
            fout.seek(start)
            left = end - start
            while left > 0:
                chunk = fin.read(min(_COPY_CHUNK, left))
                if not chunk:
                    break
                fout.write(chunk)
                left -= len(chunk)
            pos = end
        fout.truncate(size)
    shutil.copymode(src, dst)


def _has_data_after(fin: object, pos: int) -> bool:
    """After SEEK_DATA failed at *pos*: True if that was not ENXIO (the file system has no hole support)."""
    try:
        os.lseek(fin.fileno(), pos, os.SEEK_DATA)  # type: ignore[attr-defined]
    except OSError as exc:
        import errno

        return exc.errno != errno.ENXIO
    return True
