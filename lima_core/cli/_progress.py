"""``lima start --progress``: the guest's provisioning output while the instance starts.

Lima's host agent tails ``/var/log/cloud-init-output.log`` over SSH and reports each line as a
``cloudInitProgress`` event. Here ``lima start`` tails it itself, on a connection of its own
(not the instance's ControlMaster), from the moment the guest's SSH answers until the start is
over; each line is shown as ``cloud-init: <line>``.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

LOG = "/var/log/cloud-init-output.log"
#: sudo when the guest has it (the log is root's on most images), else as the user
REMOTE = (f"if command -v sudo >/dev/null 2>&1; then exec sudo -n tail -n +1 -F {LOG}; "
          f"else exec tail -n +1 -F {LOG}; fi 2>/dev/null")


class CloudInitTail:
    def __init__(self, name: str, say: Callable[[str], None]) -> None:
        self.name = name
        self.say = say
        self._stop = threading.Event()
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
                self._proc = subprocess.Popen([*args, "--", REMOTE], stdin=subprocess.DEVNULL,
                                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert self._proc.stdout is not None
            for raw in self._proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    self.say(f"cloud-init: {line}")
            self._proc.wait()
            self._stop.wait(2.0)  # the guest's SSH was not up yet, or the connection dropped: again

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
        self._thread.join(timeout=5)
