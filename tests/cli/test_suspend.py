"""Suspend and resume through the CLI, with real host agents and the fake driver (internal and external):
the status, what each command says, what stop, start and delete do to a suspended instance, failures on
either side. The fake VM's "memory" is a boot id (lima_core.testing.fakevm): kept by a resume, new after a boot.
QEMU under the same commands: tests/e2e/test_suspend_resume.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("fake_ssh")


def status(lima, name: str) -> dict:
    return json.loads(lima("list", "--format", "json", name, ok=True).stdout)


def boot_id(lima_home: Path, name: str) -> str:
    return (lima_home / name / "fakevm.bootid").read_text().strip()


def template(tmp_path: Path, **fake_opts: str) -> Path:
    image = tmp_path / "image.raw"
    image.write_bytes(b"disk bytes")
    opts = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in fake_opts.items())
    path = tmp_path / "t.yaml"
    path.write_text(f"vmType: fake\n{'vmOpts:' + chr(10) + '  fake:' + chr(10) + opts if opts else ''}"
                    f"images:\n- location: {image}\nmounts: []\n")
    return path


def test_suspend_then_resume_keeps_the_vm(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                          instances: list[str], leftovers) -> None:
    instances.append("sus")
    lima("start", "--name", "sus", str(fake_template), ok=True)
    booted = boot_id(lima_home, "sus")

    r = lima("suspend", "sus", ok=True)
    assert "Instance 'sus' is suspended (" in r.stderr and "`lima resume sus`" in r.stderr
    inst = status(lima, "sus")
    assert inst["status"] == "Suspended"
    assert "hostAgentPID" not in inst and "driverPID" not in inst  # Lima's keys, and nothing runs
    assert leftovers() == []
    assert (lima_home / "sus" / "fake.savedstate").exists()
    record = json.loads((lima_home / "sus" / "suspended.json").read_text())
    assert record["driver"] == "fake" and record["instanceID"].startswith("iid-") and record["stateBytes"] > 0
    assert "Suspended" in lima("list", ok=True).stdout
    assert "instance 'sus' is Suspended; run `lima start sus`" in lima("shell", "sus", "true", ok=False).stderr
    assert "already suspended" in lima("suspend", "sus", ok=True).stderr

    r = lima("resume", "sus", ok=True)
    assert "Resuming the instance 'sus' with" in r.stderr and "READY" in r.stderr
    assert status(lima, "sus")["status"] == "Running"
    assert boot_id(lima_home, "sus") == booted  # restored, not booted
    assert not (lima_home / "sus" / "fake.savedstate").exists()
    assert not (lima_home / "sus" / "suspended.json").exists()
    assert lima("shell", "sus", "echo", "back", ok=True).stdout.strip() == "back"
    assert "already running" in lima("resume", "sus", ok=True).stderr

    # `lima start` on a suspended instance resumes it too.
    lima("suspend", "sus", ok=True)
    r = lima("start", "sus", ok=True)
    assert "Resuming" in r.stderr and "READY" in r.stderr
    assert boot_id(lima_home, "sus") == booted
    lima("stop", "sus", ok=True)
    assert status(lima, "sus")["status"] == "Stopped"
    assert leftovers() == []


@pytest.mark.parametrize("force", [False, True])
def test_stop_discards_the_saved_state_and_start_boots(lima, driver_mode: str, fake_template: Path,
                                                       lima_home: Path, instances: list[str], leftovers,
                                                       force: bool) -> None:
    instances.append("dis")
    lima("start", "--name", "dis", str(fake_template), ok=True)
    booted = boot_id(lima_home, "dis")
    lima("suspend", "dis", ok=True)
    r = lima("stop", *(["-f"] if force else []), "dis", ok=True)
    assert "is suspended: discarding its saved state" in r.stderr
    assert status(lima, "dis")["status"] == "Stopped"
    assert not (lima_home / "dis" / "fake.savedstate").exists()
    assert not (lima_home / "dis" / "suspended.json").exists()
    assert leftovers() == []
    r = lima("resume", "dis", ok=False)
    assert "is not suspended (it is Stopped); `lima start dis` boots it" in r.stderr
    r = lima("start", "dis", ok=True)
    assert "Starting the instance" in r.stderr and "Resuming" not in r.stderr
    assert boot_id(lima_home, "dis") != booted
    lima("stop", "dis", ok=True)


def test_delete_a_suspended_instance(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                     instances: list[str], leftovers) -> None:
    instances.append("del")
    lima("start", "--name", "del", str(fake_template), ok=True)
    lima("suspend", "del", ok=True)
    r = lima("delete", "del", ok=True)  # nothing runs: no -f needed
    assert "Deleted 'del' (it was suspended: its saved state went with it)." in r.stderr
    assert not (lima_home / "del").exists()
    assert leftovers() == []


def test_suspend_needs_a_running_instance(lima, driver_mode: str, fake_template: Path, instances: list[str],
                                          leftovers) -> None:
    instances.append("off")
    lima("create", "--name", "off", str(fake_template), ok=True)
    r = lima("suspend", "off", ok=False)
    assert r.stderr.strip() == "lima: instance 'off' is Stopped; only a running instance can be suspended"
    r = lima("suspend", "nosuch", ok=False)
    assert "instance 'nosuch' does not exist" in r.stderr
    assert leftovers() == []


def test_a_failed_suspend_leaves_the_vm_running(lima, driver_mode: str, tmp_path: Path, lima_home: Path,
                                                instances: list[str], leftovers) -> None:
    instances.append("nosave")
    lima("start", "--name", "nosave", str(template(tmp_path, failSuspend="the disk is full")), ok=True)
    booted = boot_id(lima_home, "nosave")
    r = lima("suspend", "nosave", ok=False)
    assert "cannot save the fake VM: the disk is full" in r.stderr and "Traceback" not in r.stderr
    assert status(lima, "nosave")["status"] == "Running"
    assert boot_id(lima_home, "nosave") == booted
    assert not (lima_home / "nosave" / "suspended.json").exists()
    assert lima("shell", "nosave", "true").exit_code == 0
    lima("stop", "nosave", ok=True)
    assert leftovers() == []


def test_a_failed_resume_keeps_the_saved_state(lima, driver_mode: str, tmp_path: Path, lima_home: Path,
                                               instances: list[str], leftovers) -> None:
    instances.append("noback")
    lima("start", "--name", "noback", str(template(tmp_path)), ok=True)
    booted = boot_id(lima_home, "noback")
    lima("suspend", "noback", ok=True)
    state = (lima_home / "noback" / "fake.savedstate").read_bytes()
    disk = (lima_home / "noback" / "disk").read_bytes()
    lima_yaml = lima_home / "noback" / "lima.yaml"
    original = lima_yaml.read_text()
    lima_yaml.write_text(original.replace("vmType: fake", "vmType: fake\nvmOpts:\n  fake:\n"
                                                          "    failResume: no room for the memory"))

    r = lima("resume", "noback", ok=False)
    assert "instance 'noback' failed to resume: cannot restore the fake VM: no room for the memory" in r.stderr
    assert "Its saved state and disk are kept: `lima resume noback` tries again; `lima stop noback` discards" \
        in r.stderr
    assert status(lima, "noback")["status"] == "Suspended"
    assert (lima_home / "noback" / "fake.savedstate").read_bytes() == state
    assert (lima_home / "noback" / "disk").read_bytes() == disk
    assert leftovers() == []

    # Fixed, it resumes; lima.yaml was edited meanwhile, which the user is told applies from the next boot.
    lima_yaml.write_text(original.replace("vmType: fake", "vmType: fake\ncpus: 1"))
    r = lima("resume", "noback", ok=True)
    assert "lima.yaml changed while the instance was suspended" in r.stderr
    assert boot_id(lima_home, "noback") == booted
    lima("stop", "noback", ok=True)
    assert leftovers() == []


def test_an_unreadable_suspend_record_says_what_to_do(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                                      instances: list[str], leftovers) -> None:
    instances.append("junk")
    lima("start", "--name", "junk", str(fake_template), ok=True)
    lima("suspend", "junk", ok=True)
    (lima_home / "junk" / "suspended.json").write_text("{not json")
    assert status(lima, "junk")["status"] == "Suspended"
    r = lima("start", "junk", ok=False)
    assert "suspended.json cannot be read" in r.stderr and "run `lima stop junk` to discard the saved state" in r.stderr
    lima("stop", "junk", ok=True)
    assert status(lima, "junk")["status"] == "Stopped"
    assert not (lima_home / "junk" / "fake.savedstate").exists()
    assert leftovers() == []
