"""End to end: the lima CLI boots the test guest on microvm, in-process and as an external driver.

create, start (SSH and the boot scripts), shell, list, stop (ACPI power button), start
again and stop from another process, delete. Under TCG here; KVM where it works.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lima_core.cli import app
from typer.testing import CliRunner

pytestmark = pytest.mark.vm


@pytest.fixture(params=["internal", "external"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "external":
        # The console script lima-driver-microvm, beside this Python (pip installed it).
        monkeypatch.setenv("LIMA_EXTERNAL_DRIVERS", "microvm")
    return request.param


def lima(*args: str, ok: bool = True):
    result = CliRunner().invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result


def status(name: str) -> dict:
    return json.loads(lima("list", "--format", "json", name).stdout)


def test_boot_shell_stop_delete(mode: str, template: Path, lima_home: Path) -> None:
    rows = json.loads(lima("drivers", "list", "--format", "json").stdout)
    winner = next(r for r in rows if r["name"] == "microvm" and not r["shadowedBy"])
    assert winner["kind"] == mode and winner["available"] == "yes"

    lima("create", "--name", "mvm", str(template))
    started = time.monotonic()
    r = lima("start", "mvm", "--timeout", "3m")
    boot = time.monotonic() - started
    print(f"microvm ({mode}): lima start to READY in {boot:.1f} s", file=sys.stderr)
    assert f"{mode} VM driver 'microvm'" in r.stderr and "READY" in r.stderr
    inst = lima_home / "mvm"
    args = (inst / "microvm.pid").read_text().strip()
    assert args.isdigit()
    cmdline = Path(f"/proc/{args}/cmdline").read_bytes().split(b"\0")
    assert b"-M" in cmdline and cmdline[cmdline.index(b"-M") + 1].startswith(b"microvm,")

    out = lima("shell", "mvm", "uname", "-a").stdout
    assert out.startswith("Linux lima-mvm ") and "x86_64" in out
    assert "virtio_mmio" in lima("shell", "mvm", "cat", "/proc/modules").stdout
    assert "on QEMU microvm" in (inst / "serial.log").read_text()  # the driver's boot script ran
    row = status("mvm")
    assert row["status"] == "Running" and row["vmType"] == "microvm" and row["driverPID"] == int(args)

    started = time.monotonic()
    lima("stop", "mvm")
    print(f"microvm ({mode}): lima stop in {time.monotonic() - started:.1f} s", file=sys.stderr)
    assert status("mvm")["status"] == "Stopped"
    assert "reboot: Power down" in (inst / "serial.log").read_text()  # a clean ACPI power-off, not a kill

    lima("delete", "mvm")
    assert not inst.exists()


def test_stop_from_another_process(template: Path, lima_home: Path, tmp_path: Path) -> None:
    """The driver finds the VM from the instance directory: a fresh driver object in a new process stops it."""
    lima("create", "--name", "other", str(template))
    lima("start", "other", "--timeout", "3m")
    inst = lima_home / "other"
    pid = int((inst / "microvm.pid").read_text())
    code = ("import sys; from lima_core import store, instance; "
            "inst = store.inspect('other', driver_status=False); instance.load_driver(inst).stop()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    deadline = time.monotonic() + 30
    while status("other")["status"] != "Stopped" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status("other")["status"] == "Stopped"  # the host agent saw the VM end and exited
    lima("delete", "other")
