"""reverse-sshfs: the host agent mounts each shared directory in the guest over SSH, as Lima's does.

For each mount (Lima's ``pkg/hostagent/mount.go`` with sshocker's reverse
sshfs):

1. the host directory is made (0755), and the mount point in the guest, as
   the guest user (the boot script 25-guestagent-base.sh made it the user's);
2. ``ssh <instance> -- sshfs :<location> <mountPoint> -o slave [-o ro]
   -o allow_other[,cache=no][,follow_symlinks]`` runs through the instance's
   ControlMaster, and the host's OpenSSH ``sftp-server -e -d <location> [-R]``
   serves SFTP on that ssh's stdin and stdout (``-o slave``: sshfs in the
   guest speaks SFTP over its own stdio instead of connecting anywhere);
3. the guest's /proc/mounts must show the ``fuse.sshfs`` mount within 30 s;
4. if sshfs fails at once, it is tried once more without ``allow_other``
   (Lima's fallback; Lima also adds ``nonempty``, which fuse3's sshfs
   rejects, and drops cache and followSymlinks, which are kept here).

The mount lives as long as the two processes: stopping them (when the host
agent stops) unmounts it, and the next host agent mounts it again. When the
ssh ends while the host agent runs (the guest rebooted), the mount is made
again as soon as SSH answers. Both processes have pid files with lima-core's
identity record (``sshfs-<i>.pid``, ``sftp-server-<i>.pid``), so ``lima stop
-f`` kills them even though it kills the host agent first.
"""

from __future__ import annotations

import collections
import logging
import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

from .. import filenames, pidfile, processes, sshutil
from ..errors import LimaError
from ..mounts import ResolvedMount

log = logging.getLogger("lima_core.hostagent")

#: Lima waits this long for the mount to show up in the guest
MOUNT_WAIT = 30.0
MOUNT_POLL = 0.5
#: between attempts to mount again after the guest's side ended (a reboot)
REMOUNT_INTERVAL = 2.0
REMOUNT_MAX_INTERVAL = 10.0
STOP_TIMEOUT = 3.0
SSH_TIMEOUT = 60.0
#: where an OpenSSH sftp-server is looked for after PATH (Debian and Ubuntu, Fedora, Arch, Homebrew, BSDs)
SFTP_SERVER_PATHS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/lib/ssh/sftp-server",
                     "/usr/libexec/sftp-server", "/usr/lib/sftp-server", "/opt/homebrew/opt/openssh/libexec/sftp-server",
                     "/usr/local/opt/openssh/libexec/sftp-server", "/usr/local/libexec/sftp-server")


class SSHFSError(LimaError):
    """A reverse-sshfs mount cannot be made."""


def find_sftp_server(driver: str = "") -> str:
    """The host's OpenSSH sftp-server. :raises SSHFSError: none is installed, or *driver* is Lima's builtin
    server, which lima-core does not have."""
    if driver == "builtin":
        raise SSHFSError("sshfs.sftpDriver 'builtin' (Lima's in-process SFTP server) is not available in "
                         "lima-core; use 'openssh-sftp-server' (or leave sftpDriver unset)")
    found = shutil.which("sftp-server")
    if found:
        return found
    for path in SFTP_SERVER_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise SSHFSError("reverse-sshfs needs OpenSSH's sftp-server on the host, and none was found in PATH or "
                     f"{', '.join(SFTP_SERVER_PATHS[:3])}; install it (Debian: apt install openssh-sftp-server)")


def guest_command(m: ResolvedMount, allow_other: bool = True) -> str:
    """The command ssh runs in the guest."""
    words = ["sshfs", shlex.quote(":" + m.location), shlex.quote(m.mount_point), "-o", "slave"]
    if not m.writable:
        words += ["-o", "ro"]
    extra = (["allow_other"] if allow_other else []) + ([] if m.sshfs_cache else ["cache=no"]) + \
        (["follow_symlinks"] if m.sshfs_follow_symlinks else [])
    if extra:
        words += ["-o", ",".join(extra)]
    return " ".join(words)


def server_command(sftp_server: str, m: ResolvedMount) -> list[str]:
    """The host's SFTP server for one mount: log to stderr, start in the shared directory, read-only unless
    the mount is writable."""
    return [sftp_server, "-e", "-d", m.location] + ([] if m.writable else ["-R"])


def proc_mounts_path(path: str) -> str:
    """*path* as /proc/mounts spells it (space, tab, newline and backslash octal-escaped)."""
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")


def mounted_check(m: ResolvedMount) -> str:
    """A guest shell command that succeeds when *m* is mounted with sshfs."""
    want = shlex.quote(proc_mounts_path(m.mount_point))
    return (f'while read -r _ mp type _; do [ "$type" = fuse.sshfs ] && [ "$mp" = {want} ] && exit 0; '
            "done </proc/mounts; exit 1")


class _Stderr:
    """Reads a process's stderr into the log, keeping the last lines for an error message."""

    def __init__(self, stream, label: str) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=5)
        self.thread = threading.Thread(target=self._read, args=(stream, label), daemon=True, name=label)
        self.thread.start()

    def _read(self, stream, label: str) -> None:
        with stream:
            for raw in stream:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    self.lines.append(line)
                    log.info("%s: %s", label, line)

    def text(self) -> str:
        self.thread.join(1.0)
        return " | ".join(self.lines)


class Mount:
    """One reverse-sshfs mount: its ssh (running sshfs in the guest) and the host's sftp-server."""

    def __init__(self, inst_dir: Path, name: str, mount: ResolvedMount, sftp_server: str) -> None:
        self.inst_dir, self.name, self.mount, self.sftp_server = inst_dir, name, mount, sftp_server
        self.ssh: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self._stderr: _Stderr | None = None
        self._lock = threading.Lock()
        self.closed = False

    @property
    def what(self) -> str:
        return f"{self.mount.location} on {self.mount.mount_point}"

    def _ssh(self, *command: str, timeout: float = SSH_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([*sshutil.command(self.inst_dir, self.name, connect_timeout=10, tty=False), "--",
                               *command], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    def start(self) -> str:
        """Mount it; "" when mounted, else why not."""
        m = self.mount
        try:
            os.makedirs(m.location, mode=0o755, exist_ok=True)
        except OSError as exc:
            return f"reverse-sshfs: cannot create {m.location} on the host: {exc.strerror}"
        try:
            made = self._ssh("mkdir", "-p", shlex.quote(m.mount_point))
        except subprocess.TimeoutExpired:
            return f"reverse-sshfs: no answer from the guest while creating {m.mount_point}"
        if made.returncode != 0:
            return f"reverse-sshfs: cannot create {m.mount_point} in the guest: {processes.tail(made.stderr)}"
        error = self._attempt(allow_other=True)
        if error and error != "closed":
            log.warning("reverse-sshfs: mounting %s failed (%s); trying again without allow_other", self.what, error)
            if not self._attempt(allow_other=False):
                log.warning("reverse-sshfs: %s is mounted without allow_other: only the guest user can see it "
                            "(is user_allow_other in the guest's /etc/fuse.conf?)", self.what)
                return ""
            return f"reverse-sshfs: cannot mount {self.what}: {error}"
        return "" if error != "closed" else "reverse-sshfs: stopped while mounting"

    def _attempt(self, allow_other: bool) -> str:
        """One try: start both processes, wait for the mount; "" when it is there."""
        m = self.mount
        with self._lock:
            if self.closed:
                return "closed"
            to_ssh_r, to_ssh_w = os.pipe()
            from_ssh_r, from_ssh_w = os.pipe()
            try:
                self.server = subprocess.Popen(server_command(self.sftp_server, m), stdin=from_ssh_r,
                                               stdout=to_ssh_w, stderr=subprocess.PIPE, start_new_session=True)
                ssh = [*sshutil.command(self.inst_dir, self.name, connect_timeout=10, tty=False), "--",
                       guest_command(m, allow_other)]
                self.ssh = subprocess.Popen(ssh, stdin=to_ssh_r, stdout=from_ssh_w, stderr=subprocess.PIPE,
                                            start_new_session=True)
            except OSError as exc:
                self._stop_locked()
                return f"cannot run {exc.filename}: {exc.strerror}"
            finally:
                for fd in (to_ssh_r, to_ssh_w, from_ssh_r, from_ssh_w):
                    os.close(fd)
            pidfile.write(self.inst_dir / filenames.sftp_server_pid_file(m.index), self.server.pid)
            pidfile.write(self.inst_dir / filenames.sshfs_pid_file(m.index), self.ssh.pid)
            ssh_proc = self.ssh
            self._stderr = _Stderr(self.ssh.stderr, f"sshfs[{m.index}]")
            _Stderr(self.server.stderr, f"sftp-server[{m.index}]")
        log.info("reverse-sshfs: mounting %s: %s", self.what, guest_command(m, allow_other))
        deadline = time.monotonic() + MOUNT_WAIT
        while True:
            code = ssh_proc.poll()
            if code is not None:
                why = self._stderr.text() or f"ssh {processes.describe_exit(code)}"
                self.stop()
                return "closed" if self.closed else why
            try:
                if self._ssh(mounted_check(m), timeout=20).returncode == 0:
                    log.info("reverse-sshfs: mounted %s", self.what)
                    return ""
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                log.warning("reverse-sshfs: %s is not in the guest's /proc/mounts after %g s", self.what, MOUNT_WAIT)
                return ""  # Lima's rule: only a warning; the processes stay
            time.sleep(MOUNT_POLL)

    def running(self) -> bool:
        ssh = self.ssh
        return ssh is not None and ssh.poll() is None

    def wait(self) -> int | None:
        """Until the ssh ends; its exit status (None when there is none)."""
        ssh = self.ssh
        return ssh.wait() if ssh is not None else None

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        for proc, pid_name in ((self.ssh, filenames.sshfs_pid_file(self.mount.index)),
                               (self.server, filenames.sftp_server_pid_file(self.mount.index))):
            if proc is not None:
                try:
                    processes.terminate(proc, STOP_TIMEOUT)
                except LimaError as exc:
                    log.warning("reverse-sshfs: %s", exc.message)
            pidfile.remove(self.inst_dir / pid_name)

    def close(self) -> None:
        """Unmount for good: no attempt after this one succeeds."""
        with self._lock:
            self.closed = True
            self._stop_locked()


class Mounts:
    """The instance's reverse-sshfs mounts, each watched: when its ssh ends while the host agent runs, it is
    mounted again."""

    def __init__(self, inst_dir: Path, name: str, mounts: list[ResolvedMount]) -> None:
        self.inst_dir, self.name, self.mounts = inst_dir, name, mounts
        self.active: list[Mount] = []
        self._closed = threading.Event()

    def mount_all(self) -> list[str]:
        """Mount each in order; the errors (none: all mounted)."""
        if not self.mounts:
            return []
        try:
            server = find_sftp_server(self.mounts[0].sftp_driver)
        except SSHFSError as exc:
            return [f"reverse-sshfs: {exc.message}"]
        errors: list[str] = []
        for m in self.mounts:
            if self._closed.is_set():
                break
            try:
                find_sftp_server(m.sftp_driver)
            except SSHFSError as exc:
                errors.append(f"reverse-sshfs: mounts[{m.index}]: {exc.message}")
                continue
            mount = Mount(self.inst_dir, self.name, m, server)
            self.active.append(mount)
            error = mount.start()
            if error:
                errors.append(error)
                continue
            threading.Thread(target=self._watch, args=(mount,), daemon=True, name=f"sshfs-{m.index}").start()
        return errors

    def _watch(self, mount: Mount) -> None:
        interval = REMOUNT_INTERVAL
        while not self._closed.is_set():
            code = mount.wait()
            if self._closed.is_set() or mount.closed:
                return
            log.warning("reverse-sshfs: the mount of %s ended (ssh %s); mounting it again when the guest answers",
                        mount.what, processes.describe_exit(code) if code is not None else "not running")
            mount.stop()
            while not self._closed.is_set():
                if self._closed.wait(interval):
                    return
                error = mount.start()
                if not error:
                    interval = REMOUNT_INTERVAL
                    break
                log.info("reverse-sshfs: not mounted again yet: %s", error)
                interval = min(interval * 2, REMOUNT_MAX_INTERVAL)

    def close(self) -> None:
        self._closed.set()
        for mount in self.active:
            mount.close()
