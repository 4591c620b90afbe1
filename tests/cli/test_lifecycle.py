"""The instance lifecycle with real host-agent processes and the fake driver,
whose VM is a real child process: start, shell, stop, kill, Broken, recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("fake_ssh")


def status(lima, name: str) -> dict:
    return json.loads(lima("list", "--format", "json", name, ok=True).stdout)


def wait_status(lima, name: str, want: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        inst = status(lima, name)
        if inst["status"] == want or time.monotonic() > deadline:
            return inst
        time.sleep(0.1)


def test_start_shell_stop_start_delete(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                       instances: list[str], leftovers) -> None:
    instances.append("life")
    lima("create", "--name", "life", str(fake_template), ok=True)
    r = lima("start", "life", ok=True)
    assert "READY. Run `lima shell life`" in r.stderr
    assert f"{driver_mode} VM driver 'fake'" in r.stderr
    inst = status(lima, "life")
    assert inst["status"] == "Running" and inst["hostAgentPID"] and inst["driverPID"]
    assert inst["sshLocalPort"] > 0

    r = lima("shell", "life", "echo", "hello", ok=True)
    assert r.stdout.strip() == "hello"
    r = lima("shell", "life", "--", "echo", "separated", ok=True)
    assert r.stdout.strip() == "separated"
    r = lima("shell", "life", "sh", "-c", "exit 7")
    assert r.exit_code == 7
    r = lima("shell", "--workdir", "/", "life", "pwd", ok=True)
    assert r.stdout.strip() == "/"

    r = lima("start", "life", ok=True)
    assert "already running" in r.stderr

    r = lima("delete", "life", ok=False)
    assert "is running" in r.stderr

    lima("stop", "life", ok=True)
    assert status(lima, "life")["status"] == "Stopped"
    assert leftovers() == []
    events = [json.loads(line) for line in (lima_home / "life" / "ha.stdout.log").read_text().splitlines()]
    assert events[-1]["status"].get("exiting") is True

    lima("start", "life", ok=True)
    assert status(lima, "life")["status"] == "Running"
    lima("delete", "-f", "life", ok=True)
    assert not (lima_home / "life").exists()
    assert leftovers() == []


def test_start_from_template_creates_then_starts(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                                 instances: list[str], leftovers) -> None:
    instances.append("tmpl")
    lima("start", "--name", "tmpl", str(fake_template), ok=True)
    assert status(lima, "tmpl")["status"] == "Running"
    lima("stop", "-f", "tmpl", ok=True)
    assert status(lima, "tmpl")["status"] == "Stopped"
    assert leftovers() == []
    assert (lima_home / "tmpl" / "disk").exists()  # stop -f keeps the disk


def test_vm_exit_is_noticed(lima, driver_mode: str, tmp_path: Path, lima_home: Path, instances: list[str], leftovers) -> None:
    image = tmp_path / "i.raw"
    image.write_bytes(b"x")
    t = tmp_path / "short.yaml"
    t.write_text(f"vmType: fake\nvmOpts:\n  fake:\n    exitAfter: 2\nimages:\n- location: {image}\nmounts: []\n")
    instances.append("short")
    lima("start", "--name", "short", str(t), ok=True)
    inst = wait_status(lima, "short", "Stopped")
    assert inst["status"] == "Stopped"
    last = json.loads((lima_home / "short" / "ha.stdout.log").read_text().splitlines()[-1])
    assert last["status"]["exiting"] is True
    assert "exited with status 3" in " ".join(last["status"]["errors"])
    assert leftovers() == []


def test_killed_vm_is_noticed(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                              instances: list[str], leftovers) -> None:
    instances.append("kvm")
    lima("start", "--name", "kvm", str(fake_template), ok=True)
    os.kill(status(lima, "kvm")["driverPID"], signal.SIGKILL)
    inst = wait_status(lima, "kvm", "Stopped")
    assert inst["status"] == "Stopped"
    last = json.loads((lima_home / "kvm" / "ha.stdout.log").read_text().splitlines()[-1])
    assert "was killed by SIGKILL" in " ".join(last["status"]["errors"])
    assert leftovers() == []


def test_killed_host_agent_is_broken_and_stop_f_recovers(lima, driver_mode: str, fake_template: Path,
                                                         lima_home: Path, instances: list[str], leftovers) -> None:
    instances.append("kha")
    lima("start", "--name", "kha", str(fake_template), ok=True)
    os.kill(status(lima, "kha")["hostAgentPID"], signal.SIGKILL)
    if driver_mode == "internal":
        # The VM outlives its host agent: Broken, with the reason and the way out.
        inst = wait_status(lima, "kha", "Broken")
        assert inst["status"] == "Broken"
        assert "the fake VM is running but its host agent is not; run `lima stop -f kha`" in inst["errors"][0]
        r = lima("stop", "kha", ok=False)
        assert "lima stop -f kha" in r.stderr
        r = lima("start", "kha", ok=False)
        assert "lima stop -f kha" in r.stderr
    else:
        # As in Lima, the VM is bound to the start stream: the external driver ends
        # it when the host agent's connection drops, and then exits itself.
        assert wait_status(lima, "kha", "Stopped")["status"] == "Stopped"
        assert leftovers() == []
    lima("stop", "-f", "kha", ok=True)
    assert status(lima, "kha")["status"] == "Stopped"
    assert leftovers() == []
    lima("start", "kha", ok=True)  # and it starts again
    lima("stop", "kha", ok=True)


def test_failed_start_keeps_the_instance(lima, driver_mode: str, tmp_path: Path, lima_home: Path,
                                         instances: list[str], leftovers) -> None:
    image = tmp_path / "i.raw"
    image.write_bytes(b"data")
    t = tmp_path / "fails.yaml"
    t.write_text(f"vmType: fake\nvmOpts:\n  fake:\n    failStart: no accelerator here\nimages:\n- location: {image}\n"
                 "mounts: []\n")
    instances.append("fails")
    lima("create", "--name", "fails", str(t), ok=True)
    r = lima("start", "fails", ok=False)
    assert "failed to start: no accelerator here" in r.stderr
    assert (lima_home / "fails" / "disk").read_bytes() == b"data"
    assert (lima_home / "fails" / "lima.yaml").exists()
    assert status(lima, "fails")["status"] == "Stopped"
    assert leftovers() == []


def test_second_host_agent_refuses(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                   instances: list[str], leftovers) -> None:
    instances.append("dup")
    lima("start", "--name", "dup", str(fake_template), ok=True)
    proc = subprocess.run([sys.executable, "-m", "lima_core", "hostagent", "dup"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1
    assert "already running" in proc.stdout
    assert status(lima, "dup")["status"] == "Running"
    lima("stop", "dup", ok=True)


def test_snapshots_while_running(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                 instances: list[str], leftovers) -> None:
    instances.append("rsnap")
    lima("start", "--name", "rsnap", str(fake_template), ok=True)
    lima("snapshot", "create", "rsnap", "--tag", "live", ok=True)
    assert lima("snapshot", "list", "-q", "rsnap", ok=True).stdout.split() == ["live"]
    assert status(lima, "rsnap")["status"] == "Running"  # the host agent's driver server was not stopped
    lima("stop", "rsnap", ok=True)
    assert leftovers() == []
