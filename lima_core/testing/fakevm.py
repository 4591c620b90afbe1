"""The fake driver's "VM": a process that runs until SIGTERM (a clean power-off).

    python -m lima_core.testing.fakevm INSTANCE_DIR [--exit-after S] [--ignore-term] [--restore STATE]

It writes ``fakevm.running`` in the instance directory while it runs, so tests
(and a fake ``ssh``) can tell that the guest is up. Like a guest that ran its
boot scripts, it writes the instance id from cidata to
``fakevm-root/run/lima-ssh-ready`` and ``lima-boot-done`` (see
:mod:`lima_core.testing.fakessh`).

Its "memory" is a boot id, made at boot and kept in ``fakevm.bootid`` while it
runs. SIGUSR1 saves it (the fake driver's ``suspend``): the boot id goes to
``fake.savedstate`` and the process exits 0. ``--restore STATE`` starts from
such a file instead of booting: same boot id, no boot scripts.

It runs cidata's ``lima-guestagent`` until it stops, from boot or restore
(see :mod:`lima_core.testing.fakeguest`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

RUNNING = "fakevm.running"
ROOT = "fakevm-root"
BOOT_ID = "fakevm.bootid"
SAVED_STATE = "fake.savedstate"


def _boot(instance_dir: Path, restored: bool) -> None:
    """Start the guest agent from cidata; unless *restored*, read this boot's instance id from cidata and
    mark the boot as done."""
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
    if restored:
        return  # the guest's boot scripts ran in the boot that was saved
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
    parser.add_argument("--restore", type=Path, default=None)
    opts = parser.parse_args(argv)
    marker = opts.instance_dir / RUNNING
    stopping = saving = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    def on_save(_sig: int, _frame: object) -> None:
        nonlocal stopping, saving
        stopping = saving = True

    signal.signal(signal.SIGTERM, signal.SIG_IGN if opts.ignore_term else on_term)
    signal.signal(signal.SIGUSR1, on_save)
    if opts.restore is not None:
        boot_id = json.loads(opts.restore.read_text())["bootId"]
        print(f"fake VM: restored boot {boot_id} from {opts.restore}", file=sys.stderr)
    else:
        boot_id = os.urandom(8).hex()
    (opts.instance_dir / BOOT_ID).write_text(boot_id + "\n")
    marker.write_text(f"{os.getpid()}\n")
    _boot(opts.instance_dir, restored=opts.restore is not None)
    deadline = time.monotonic() + opts.exit_after if opts.exit_after is not None else None
    try:
        while not stopping:
            if deadline is not None and time.monotonic() >= deadline:
                print("fake VM: exiting on its own (--exit-after)", file=sys.stderr)
                return 3
            time.sleep(0.05)
        if saving:
            tmp = opts.instance_dir / (SAVED_STATE + ".tmp")
            tmp.write_text(json.dumps({"bootId": boot_id}) + "\n")
            os.replace(tmp, opts.instance_dir / SAVED_STATE)
            print(f"fake VM: saved boot {boot_id}", file=sys.stderr)
    finally:
        marker.unlink(missing_ok=True)
        (opts.instance_dir / BOOT_ID).unlink(missing_ok=True)
        from . import fakeguest

        fakeguest.stop_agent(opts.instance_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
