"""The host agent: one background process per running instance (``lima hostagent NAME``).

It holds ``ha.lock`` for its whole life and writes ``ha.pid``; it configures
the driver, builds cidata, starts the VM, waits for SSH and for the guest's
boot scripts (``/run/lima-boot-done`` holding this boot's instance id), and
reports each step as a JSON event line on stdout (``ha.stdout.log``). Logs are
JSON lines on stderr (``ha.stderr.log``). ``GET /v1/info`` on ``ha.sock``
answers with the SSH port, as Lima's does.

It exits when asked (SIGINT/SIGTERM: it stops the VM first), when the driver's
start stream reports that the VM ended, or when an external driver process
dies (then it stops the VM through a fresh driver process, so nothing is
orphaned). A request to stop while the VM is still being set up interrupts
the driver call in progress (an external driver's call is cancelled), so a
hung driver cannot keep ``lima stop`` waiting. If no driver can stop the VM,
the host agent kills the VM process itself, as ``lima stop -f`` would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from .. import events, filenames, instance, locks, pidfile, store
from .agent import HostAgent
from .logformat import JSONFormatter

__all__ = ["HostAgent", "run"]


def run(name: str) -> int:
    """The ``lima hostagent`` process. Returns the exit code."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    logging.getLogger("lima_core").handlers[:] = [handler]
    logging.getLogger("lima_core").setLevel(logging.DEBUG)
    inst_dir = store.existing_dir(name)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(locks.exclusive(inst_dir / instance.HA_LOCK, timeout=0))
        except locks.Busy:
            why = f"instance {name!r} is already running"
        except locks.Gone:
            why = f"instance {name!r} does not exist (it was deleted meanwhile)"
        else:
            return _run_locked(name, inst_dir)
        events.emit(sys.stdout, events.Event(exiting=True, errors=[why]))
        return 1


def _run_locked(name: str, inst_dir: Path) -> int:
    pid_path = inst_dir / filenames.HOST_AGENT_PID
    agent = HostAgent(name, inst_dir)
    # Before ha.pid exists: a `lima stop` that finds it signals us at once, and is heard.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, agent.on_signal)
    pidfile.write(pid_path, os.getpid())
    try:
        return agent.run()
    finally:
        pidfile.remove(pid_path)
