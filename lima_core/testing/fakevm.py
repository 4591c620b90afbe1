"""The fake driver's "VM": a process that runs until SIGTERM (a clean power-off).

    python -m lima_core.testing.fakevm INSTANCE_DIR [--exit-after S] [--ignore-term]

It writes ``fakevm.running`` in the instance directory while it runs, so tests
(and a fake ``ssh``) can tell that the guest is up. Like a guest that ran its
boot scripts, it writes the instance id from cidata to
``fakevm-root/run/lima-ssh-ready`` and ``lima-boot-done`` (see
:mod:`lima_core.testing.fakessh`), and runs cidata's ``lima-guestagent`` until
it stops (see :mod:`lima_core.testing.fakeguest`).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

RUNNING = "fakevm.running"
ROOT = "fakevm-root"


def _boot(instance_dir: Path) -> None:
    """Read this boot's instance id from cidata and mark the boot as done."""
    iso = instance_dir / "cidata.iso"
    if not iso.exists():
        return
    import io

    import pycdlib

    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        buf = io.BytesIO()
        reader.get_file_from_iso_fp(buf, rr_path="/lima.env")
        agent = io.BytesIO()
        try:
            reader.get_file_from_iso_fp(agent, rr_path="/lima-guestagent")
        except pycdlib.pycdlibexception.PyCdlibInvalidInput:
            agent = None  # plain mode: no guest agent
    finally:
        reader.close()
    if agent is not None:
        from . import fakeguest

        fakeguest.start_agent(instance_dir, agent.getvalue(), die_with_parent=True)
    for line in buf.getvalue().decode().splitlines():
        key, _, value = line.partition("=")
        if key == "LIMA_CIDATA_IID":
            run = instance_dir / ROOT / "run"
            run.mkdir(parents=True, exist_ok=True)
            for marker in ("lima-ssh-ready", "lima-boot-done"):
                (run / marker).write_text(value + "\n")


def main(argv: list[str] | None = None) -> int:
    import argparse  # here: the fake driver imports this module for RUNNING, and starts faster without it

    parser = argparse.ArgumentParser()
    parser.add_argument("instance_dir", type=Path)
    parser.add_argument("--exit-after", type=float, default=None)
    parser.add_argument("--ignore-term", action="store_true")
    opts = parser.parse_args(argv)
    marker = opts.instance_dir / RUNNING
    stopping = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, signal.SIG_IGN if opts.ignore_term else on_term)
    marker.write_text(f"{os.getpid()}\n")
    _boot(opts.instance_dir)
    deadline = time.monotonic() + opts.exit_after if opts.exit_after is not None else None
    try:
        while not stopping:
            if deadline is not None and time.monotonic() >= deadline:
                print("fake VM: exiting on its own (--exit-after)", file=sys.stderr)
                return 3
            time.sleep(0.05)
    finally:
        marker.unlink(missing_ok=True)
        from . import fakeguest

        fakeguest.stop_agent(opts.instance_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
