"""Ctrl-C interrupts a call to an external driver that stopped answering, and cancels it.

Run in a child interpreter, so the SIGINT cannot reach pytest itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lima_core import store, yamlfile

_SCRIPT = r"""
import os, signal, sys, threading, time
from pathlib import Path
from lima_core import store
from lima_core.external import supervisor
from lima_core.external.client import connect
d = Path(sys.argv[2])
host = connect(sys.argv[1], "fake", d)
host.configure(store.inspect(d.name, driver_status=False))
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
started = time.monotonic()
try:
    host.validate()  # the fake driver sleeps in validate (hangValidate) and there is no deadline
    print("RETURNED")
except KeyboardInterrupt:
    print("INTERRUPTED %.1f" % (time.monotonic() - started))
print("INFO", host.info().name)  # the connection still works
host.close()
supervisor.stop_servers(d, force=True)
"""


def test_ctrl_c_interrupts_a_hung_call(driver_bin: Path, lima_home: Path) -> None:
    d = store.write_new("hung", yamlfile.dump({
        "vmType": "fake", "arch": "x86_64", "cpus": 1, "memory": "1GiB", "disk": "2GiB",
        "images": [{"location": "/nonexistent.img", "arch": "x86_64"}], "mounts": [],
        "vmOpts": {"fake": {"hangValidate": 60}}}))
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(driver_bin / "lima-driver-fake"), str(d)],
                          capture_output=True, text=True, timeout=50)
    lines = proc.stdout.splitlines()
    assert lines and lines[0].startswith("INTERRUPTED"), (proc.stdout, proc.stderr)
    assert float(lines[0].split()[1]) < 30  # not the 60 s the driver sleeps
    assert "INFO fake" in lines
