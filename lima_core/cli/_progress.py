"""``lima start --progress``: the guest's provisioning output while the instance starts.

Lima's host agent tails ``/var/log/cloud-init-output.log`` over SSH and reports each line as a
``cloudInitProgress`` event. Here ``lima start`` tails it itself, on a connection of its own
(not the instance's ControlMaster), from the moment the guest's SSH answers until the start is
over; each line is shown as ``cloud-init: <line>``.
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
#: from line {start} on; sudo when the guest has it (the log is root's on most images), else as the user
REMOTE = ("if command -v sudo >/dev/null 2>&1; then exec sudo -n tail -n +{start} -F " + LOG + "; "
          "else exec tail -n +{start} -F " + LOG + "; fi 2>/dev/null")


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

    def _run(self) -> None:
        from .. import dirnames, filenames, sshutil

        inst_dir = Path(dirnames.instance_dir(self.name))
        while not self._stop.is_set():
            if not (inst_dir / filenames.SSH_CONFIG).exists():
                self._stop.wait(0.5)
                continue
            try:
                args = sshutil.command(inst_dir, self.name, connect_timeout=5, tty=False, master=False)
            except Exception:  # no ssh on PATH: lima start itself says so
                return
            with self._lock:
                if self._stop.is_set():
                    return
                self._proc = subprocess.Popen([*args, "--", REMOTE.format(start=self._lines + 1)],
                                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, start_new_session=True)
            assert self._proc.stdout is not None
            for raw in self._proc.stdout:
                self._lines += 1
                line = raw.decode(errors="replace").rstrip()
                if line:
                    self.say(f"cloud-init: {line}")
            self._proc.wait()
            self._stop.wait(2.0)  # the guest's SSH was not up yet, or the connection dropped: again

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
        self._thread.join(timeout=5)
