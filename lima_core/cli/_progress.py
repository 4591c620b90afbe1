"""``lima start --progress``: the guest's provisioning output while the instance starts.

Lima's host agent tails ``/var/log/cloud-init-output.log`` over SSH and reports each line as a
``cloudInitProgress`` event. Here ``lima start`` tails it itself, on a connection of its own
(not the instance's ControlMaster), from the moment the guest's SSH answers until the start is
over; each line is shown as ``cloud-init: <line>``. When the start is over, the lines written
since the last one shown are fetched once more, so a fast start does not lose its tail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

LOG = "/var/log/cloud-init-output.log"
#: from line {start} on ({follow} is ``-F`` while the start goes on, empty for the last fetch); sudo
#: when the guest has it (the log is root's on most images), else as the user
REMOTE = ("if command -v sudo >/dev/null 2>&1; then exec sudo -n tail -n +{start} {follow} " + LOG + "; "
          "else exec tail -n +{start} {follow} " + LOG + "; fi 2>/dev/null")


class CloudInitTail:
    def __init__(self, name: str, say: Callable[[str], None]) -> None:
        self.name = name
        self.say = say
        self._stop = threading.Event()
        self._lines = 0  # shown so far: a new connection goes on from there
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cloud-init-progress", daemon=True)
        self._thread.start()

    def _command(self, follow: bool) -> list[str] | None:
        from .. import dirnames, filenames, sshutil

        inst_dir = Path(dirnames.instance_dir(self.name))
        if not (inst_dir / filenames.SSH_CONFIG).exists():
            return None
        try:
            args = sshutil.command(inst_dir, self.name, connect_timeout=5, tty=False, master=False)
        except Exception:  # no ssh on PATH: lima start itself says so
            return None
        return [*args, "--", REMOTE.format(start=self._lines + 1, follow="-F" if follow else "")]

    def _show(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self._lines += 1
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.say(f"cloud-init: {line}")
        proc.wait()

    def _run(self) -> None:
        while not self._stop.is_set():
            args = self._command(follow=True)
            if args is None:
                self._stop.wait(0.5)
                continue
            with self._lock:
                if self._stop.is_set():
                    return
                self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, start_new_session=True)
            self._show(self._proc)
            self._stop.wait(2.0)  # the guest's SSH was not up yet, or the connection dropped: again

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            return
        args = self._command(follow=False)
        if args is None:
            return
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            return
        timer = threading.Timer(10.0, lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            self._show(proc)
        finally:
            timer.cancel()
