"""``mountInotify``: file changes made on the host replayed in the guest, so the guest's inotify sees them.

A change made on the host side of a 9p, virtiofs or sshfs mount raises no
inotify event in the guest (the guest's kernel did not make it), so file
watchers there (a dev server, a test runner) miss it. Lima's host agent
watches each writable mount's location recursively and sends each changed
path with its modification time to its guest agent, which sets the path's
times in the guest; that raises the event. lima-core does the same without
a guest agent: the host agent watches with Linux inotify, and one ssh session
through the instance's ControlMaster runs a shell loop in the guest that
reads "<time>" and "<guest path>" lines and runs ``touch -c -d @<time>`` on the
path. Setting a path's times in the guest changes them on the host only to
what they were, which the watcher recognises (an event whose modification
time was just sent is dropped), so nothing echoes.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import shlex
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import sshutil
from ..mounts import ResolvedMount

log = logging.getLogger("lima_core.hostagent")

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
#: Lima's: create, write, attributes
MASK = IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB
_EVENT = struct.Struct("iIII")
#: the guest's side: pairs of lines, the time then the path
GUEST_LOOP = ('while IFS= read -r t && IFS= read -r p; do [ -e "$p" ] && touch -c -d "@$t" -- "$p"; done')
#: how many modification times are remembered (Lima: 10000)
CACHE_SIZE = 10000
RESTART_INTERVAL = 2.0


class Watcher:
    """Recursive inotify watches on directories; calls ``changed(host path, mtime_ns)`` for each change."""

    def __init__(self, roots: list[str], changed: Callable[[str, int], None]) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        self.changed = changed
        self.dirs: dict[int, str] = {}
        self.sent: dict[str, int] = {}
        self._stop_r, self._stop_w = os.pipe()
        for root in roots:
            self._watch_tree(root)

    def _watch(self, path: str) -> None:
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSPC:
                log.warning("mountInotify: no more inotify watches (fs.inotify.max_user_watches); %s and the "
                            "directories below it are not watched", path)
            elif err not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                log.warning("mountInotify: cannot watch %s: %s", path, os.strerror(err))
            return
        self.dirs[wd] = path

    def _watch_tree(self, root: str) -> None:
        self._watch(root)
        for top, subdirs, _files in os.walk(root, onerror=lambda exc: None):
            for d in subdirs:
                self._watch(os.path.join(top, d))

    def run(self) -> None:
        """Until :meth:`close`."""
        try:
            while True:
                ready, _, _ = select.select([self.fd, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                try:
                    data = os.read(self.fd, 64 << 10)
                except BlockingIOError:
                    continue
                try:
                    self._handle(data)
                except Exception:  # noqa: BLE001 - one bad event must not end the watching
                    log.exception("mountInotify: cannot replay a change")
        finally:
            os.close(self.fd)
            os.close(self._stop_r)

    def _handle(self, data: bytes) -> None:
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size:offset + _EVENT.size + size].rstrip(b"\0")
            offset += _EVENT.size + size
            if mask & IN_Q_OVERFLOW:
                log.warning("mountInotify: the host's inotify queue overflowed; some changes were not replayed")
                continue
            base = self.dirs.get(wd)
            if mask & IN_IGNORED:
                self.dirs.pop(wd, None)
                continue
            if base is None:
                continue
            path = os.path.join(base, os.fsdecode(name)) if name else base
            if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                self._watch_tree(path)
            try:
                mtime = os.stat(path).st_mtime_ns
            except OSError:
                continue
            if self.sent.get(path) == mtime:
                continue  # our own touch in the guest, seen again on the host; or the same change twice
            if len(self.sent) >= CACHE_SIZE:
                self.sent.clear()
            self.sent[path] = mtime
            self.changed(path, mtime)

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        os.close(self._stop_w)


def guest_path(mounts: list[ResolvedMount], host_path: str) -> str | None:
    """Where *host_path* is in the guest: under the mount point of the mount whose location holds it."""
    for m in sorted(mounts, key=lambda m: len(m.location), reverse=True):
        if host_path == m.location or host_path.startswith(m.location.rstrip("/") + "/"):
            return m.mount_point + host_path[len(m.location):]
    return None


class Replayer:
    """The guest's side: one ssh session (restarted when it ends) fed with the changed paths."""

    def __init__(self, inst_dir: Path, name: str) -> None:
        self.inst_dir, self.name = inst_dir, name
        self.proc: subprocess.Popen | None = None
        self.next_start = 0.0
        self._lock = threading.Lock()
        self.closed = False

    def send(self, guest: str, mtime_ns: int) -> None:
        if "\n" in guest:
            return  # one line per path: such a path cannot be named (nor does Lima's guest agent see one)
        line = f"{mtime_ns // 1_000_000_000}.{mtime_ns % 1_000_000_000:09d}\n{guest}\n".encode()
        with self._lock:
            if self.closed:
                return
            for _ in range(2):
                proc = self._session()
                if proc is None:
                    return
                try:
                    proc.stdin.write(line)  # type: ignore[union-attr]
                    proc.stdin.flush()  # type: ignore[union-attr]
                    return
                except (BrokenPipeError, OSError):
                    self._end()

    def _session(self) -> subprocess.Popen | None:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc
        if self.proc is not None:
            log.info("mountInotify: the guest's side ended (%s); starting it again", self.proc.returncode)
            self._end()
        if time.monotonic() < self.next_start:
            return None  # the guest is not answering (rebooting): changes until then are not replayed
        self.next_start = time.monotonic() + RESTART_INTERVAL
        ssh = [*sshutil.command(self.inst_dir, self.name, connect_timeout=10, tty=False), "--",
               "sh -c " + shlex.quote(GUEST_LOOP)]
        self.proc = subprocess.Popen(ssh, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        return self.proc

    def _end(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._end()


class MountInotify:
    """Watches the writable mounts and replays their changes in the guest, until :meth:`close`."""

    def __init__(self, inst_dir: Path, name: str, mounts: list[ResolvedMount]) -> None:
        self.mounts = [m for m in mounts if m.writable]
        self.replayer = Replayer(inst_dir, name)
        self.watcher = Watcher([m.location for m in self.mounts], self._changed)
        for m in self.mounts:
            log.info("mountInotify: watching %s for the guest's %s", m.location, m.mount_point)
        self.thread = threading.Thread(target=self.watcher.run, daemon=True, name="mount-inotify")
        self.thread.start()

    def _changed(self, host_path: str, mtime_ns: int) -> None:
        guest = guest_path(self.mounts, host_path)
        if guest is not None:
            self.replayer.send(guest, mtime_ns)

    def close(self) -> None:
        self.watcher.close()
        self.thread.join(5)
        self.replayer.close()
