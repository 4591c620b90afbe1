"""External driver faults through the real path: `lima` commands, host agents, driver processes.

Every failure must give one clear error line and exit 1, leave no process behind, keep disk,
lima.yaml and snapshots, and leave the instance in a state the next command handles.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from faultkit import Kept, alive, events, one_error_line, quick_status, set_faults, status, wait_for, wait_status

pytestmark = pytest.mark.usefixtures("fake_ssh")

#: The hooks `lima create` calls (the CLI spawned the driver).
CLI_CREATE_HOOKS = ["configure", "validate", "create", "create_disk"]
#: Every hook called while `lima start` runs on an instance with its disk: all by the host agent,
#: on the driver process the CLI launched.
HA_START_HOOKS = CLI_CREATE_HOOKS + ["info", "boot_scripts", "start", "additional_setup_for_ssh", "ssh_address"]


@pytest.mark.parametrize("hook", HA_START_HOOKS)
def test_driver_killed_during_each_start_rpc(hook: str, lima, external: Path, fake_template: Path, lima_home: Path,
                                             instances: list[str], leftovers) -> None:
    instances.append("d")
    lima("create", "--name", "d", str(fake_template), ok=True)
    (lima_home / "d" / "fake-snapshots").mkdir()
    (lima_home / "d" / "fake-snapshots" / "before").write_text("a snapshot\n")
    set_faults(lima_home, "d", dieIn=hook, dynamicSSHAddress=True)
    kept = Kept(lima_home / "d")

    r = lima("start", "d")
    # The host agent did not spawn the driver (the CLI launched it), so it knows that it died, not how.
    line = one_error_line(r, f"the fake driver process exited during {hook.replace('_', ' ')}")
    assert str(lima_home / "d" / "driver.stderr.log") in line
    assert f"dying in {hook}" in (lima_home / "d" / "driver.stderr.log").read_text()  # the fault really fired
    assert quick_status("d")["status"] == "Stopped"
    assert leftovers() == []  # start: the VM was up when the driver died; the host agent stopped it
    kept.check()
    assert events(lima_home, "d")[-1]["exiting"] is True

    set_faults(lima_home, "d", dynamicSSHAddress=True)
    lima("start", "d", ok=True)
    assert quick_status("d")["status"] == "Running"
    lima("stop", "-f", "d", ok=True)
    assert leftovers() == []


@pytest.mark.parametrize("hook", CLI_CREATE_HOOKS)
def test_driver_killed_during_create_leaves_no_half_instance(hook: str, lima, external: Path, tmp_path: Path,
                                                             fake_template: Path, lima_home: Path, leftovers) -> None:
    t = tmp_path / "dies.yaml"
    t.write_text(fake_template.read_text() + f"vmOpts:\n  fake:\n    dieIn: {hook}\n")
    r = lima("create", "--name", "half", str(t))
    one_error_line(r, f"killed by SIGKILL during {hook.replace('_', ' ')}")
    assert not (lima_home / "half").exists()
    assert leftovers() == []


def test_driver_killed_while_the_vm_runs(lima, external: Path, fake_template: Path, lima_home: Path,
                                         instances: list[str], leftovers) -> None:
    """Lima's HA never notices (the stream error is only logged) and the VM is orphaned; ours stops it."""
    instances.append("k")
    lima("start", "--name", "k", str(fake_template), ok=True)
    kept = Kept(lima_home / "k")
    vm = quick_status("k")["driverPID"]
    os.kill(int((lima_home / "k" / "fake.drv.pid").read_text()), signal.SIGKILL)
    inst = wait_status("k", "Stopped")
    assert inst["status"] == "Stopped"
    last = events(lima_home, "k")[-1]
    assert last["exiting"] and "lost the start stream of driver 'fake' (the fake driver process exited)" in \
        last["errors"][0]
    assert not alive(vm)
    assert leftovers() == []
    kept.check()
    lima("start", "k", ok=True)
    lima("stop", "k", ok=True)


def test_driver_that_dies_in_stop_leaves_no_vm(lima, external: Path, fake_template: Path, lima_home: Path,
                                               instances: list[str], leftovers) -> None:
    """Neither the driver nor a fresh one can stop the VM: the host agent kills it (Lima: Broken)."""
    instances.append("s")
    lima("create", "--name", "s", str(fake_template), ok=True)
    set_faults(lima_home, "s", dieIn="stop")
    kept = Kept(lima_home / "s")
    lima("start", "s", ok=True)
    vm = quick_status("s")["driverPID"]
    lima("stop", "s", ok=True)
    assert quick_status("s")["status"] == "Stopped"
    assert not alive(vm)
    assert "killing the VM process" in (lima_home / "s" / "ha.stderr.log").read_text()
    assert leftovers() == []
    kept.check()


def test_call_past_its_deadline(lima, external: Path, fake_template: Path, lima_home: Path,
                                monkeypatch: pytest.MonkeyPatch, leftovers) -> None:
    import dataclasses

    from lima_core.protocol import rpc

    monkeypatch.setitem(rpc.WIRE, "validate", dataclasses.replace(rpc.WIRE["validate"], deadline=1.0))
    lima("create", "--name", "h", str(fake_template), ok=True)
    set_faults(lima_home, "h", hangIn={"validate": 30})
    r = lima("start", "h")
    one_error_line(r, "driver 'fake' did not answer validate in time")
    assert quick_status("h")["status"] == "Stopped"
    lima("stop", "-f", "h", ok=True)  # the hung driver server is stopped too
    assert leftovers() == []


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_driver_exits_before_creating_its_socket(lima, tmp_path: Path, fake_template: Path, lima_home: Path,
                                                 monkeypatch: pytest.MonkeyPatch, leftovers) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "lima-driver-bad", "echo 'bad: cannot open /dev/kvm: Permission denied' >&2\nexit 3\n")
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(bin_dir))
    r = lima("create", "--name", "b", "--vm-type", "bad", str(fake_template))
    one_error_line(r, "exited with status 3 before creating its socket: bad: cannot open /dev/kvm")
    assert not (lima_home / "b").exists()
    assert leftovers() == []


def test_driver_writes_junk_to_stdout(lima, tmp_path: Path, driver_bin: Path, fake_template: Path,
                                      lima_home: Path, monkeypatch: pytest.MonkeyPatch, instances: list[str],
                                      leftovers) -> None:
    """stdout is not ours (serve mode), and the --inspect-status reply is found after junk lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "lima-driver-fake", "echo 'junk {not json'\nprintf '\\377\\000 binary\\n'\n"
                                          f"exec {driver_bin / 'lima-driver-fake'} \"$@\"\n")
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(bin_dir))
    instances.append("j")
    lima("create", "--name", "j", str(fake_template), ok=True)
    lima("start", "j", ok=True)
    inst = status(lima, "j")
    assert inst["status"] == "Running" and not inst.get("errors")
    lima("stop", "j", ok=True)
    assert status(lima, "j")["status"] == "Stopped"
    lima("delete", "j", ok=True)
    assert leftovers() == []


def test_odd_files_on_the_drivers_path(lima, tmp_path: Path, driver_bin: Path, fake_template: Path,
                                       monkeypatch: pytest.MonkeyPatch, instances: list[str]) -> None:
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "lima-driver-noexec").write_text("#!/bin/sh\nexit 0\n")  # not executable: ignored
    _script(odd / "lima-driver-text", "echo 'this is not a driver'\n")  # executable, not a driver
    (odd / "README").write_text("not a driver\n")
    (odd / "lima-driver-dir").mkdir()
    (odd / "lima-driver-dangling").symlink_to(tmp_path / "nowhere")
    ww = tmp_path / "ww"
    ww.mkdir()
    _script(ww / "lima-driver-wide", "exit 0\n").chmod(0o777)
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
    monkeypatch.setenv("LIMA_DRIVERS_PATH", os.pathsep.join([str(odd), str(ww), str(tmp_path / "missing"),
                                                             str(odd / "README"), str(driver_bin)]))
    r = lima("drivers", "list", ok=True)
    names = r.stdout
    assert "fake" in names and "text" in names
    assert "noexec" not in names and "dangling" not in names and "wide" not in names and "lima-driver-dir" not in names
    assert f"refusing driver {ww / 'lima-driver-wide'}: it is world-writable, so any user could replace it" in r.stderr
    assert "Traceback" not in r.stderr

    lima("create", "--name", "ok", str(fake_template), ok=True)  # the good driver still works
    r = lima("create", "--name", "t", "--vm-type", "text", str(fake_template))
    one_error_line(r, "external driver text")
    r = lima("create", "--name", "n", "--vm-type", "noexec", str(fake_template))
    one_error_line(r, "unknown vmType 'noexec'")


def test_stale_socket(lima, external: Path, fake_template: Path, lima_home: Path, instances: list[str],
                      leftovers) -> None:
    instances.append("st")
    lima("create", "--name", "st", str(fake_template), ok=True)
    sock = lima_home / "st" / "fake.drv.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()  # the file stays, nobody listens (a driver that was SIGKILLed)
    lima("start", "st", ok=True)
    lima("stop", "st", ok=True)
    sock.write_text("not even a socket")
    lima("start", "st", ok=True)
    lima("stop", "-f", "st", ok=True)
    assert leftovers() == []


@pytest.mark.parametrize("written_by", ["lima", "lima-core"])
def test_stale_pid_files_of_unrelated_processes_survive(written_by: str, lima, external: Path,
                                                        fake_template: Path, lima_home: Path, bystanders,
                                                        leftovers) -> None:
    """Pid files whose numbers now belong to unrelated processes, some that look like ours."""
    from lima_core import pidfile

    lima("create", "--name", "p", str(fake_template), ok=True)
    d = lima_home / "p"
    plain = bystanders()
    lookalike = bystanders(sys.executable, "-c", "import time; time.sleep(300)", "hostagent", "lima-driver-fake",
                           "--inst-dir", str(lima_home / "other"), "lima_core.testing.fakevm", "fake")
    victims = {"ha.pid": lookalike, "fake.pid": lookalike, "fake.drv.pid": plain, "qemu.pid": plain}
    for name, proc in victims.items():
        if written_by == "lima":
            (d / name).write_text(f"{proc.pid}\n")  # Lima writes the number alone
        else:  # our record, for a process that has since exited and whose number was reused
            pidfile.write(d / name, proc.pid)
            ident = pidfile.identity_path(d / name)
            ident.write_text(ident.read_text().replace('"createTime": ', '"createTime": 1'))
    assert status(lima, "p")["status"] == "Stopped"
    r = lima("stop", "-f", "p", ok=True)
    assert "left it alone" in r.stderr
    for name in victims:  # recreate them for delete
        (d / name).write_text(f"{victims[name].pid}\n")
    r = lima("delete", "-f", "p", ok=True)
    assert not d.exists()
    assert plain.poll() is None and lookalike.poll() is None
    assert leftovers() == []


def test_pid_files_pointing_at_another_instance(lima, external: Path, fake_template: Path, lima_home: Path,
                                                instances: list[str], leftovers) -> None:
    """Instance a's pid files (Lima's, or copied with `cp -r`) name instance b's live processes."""
    instances.extend(["a", "b"])
    lima("create", "--name", "a", str(fake_template), ok=True)
    lima("start", "--name", "b", str(fake_template), ok=True)
    b = quick_status("b")
    files = ["ha.pid", "fake.pid", "fake.drv.pid"]
    for name in files:
        (lima_home / "a" / name).write_text((lima_home / "b" / name).read_text())
    assert status(lima, "a")["status"] == "Stopped"
    lima("stop", "-f", "a", ok=True)
    for name in files:  # now as `cp -r b a` would copy them: identity records included
        for f in (name, name + ".identity"):
            (lima_home / "a" / f).write_bytes((lima_home / "b" / f).read_bytes())
    assert status(lima, "a")["status"] == "Stopped"
    r = lima("delete", "-f", "a", ok=True)
    assert "was copied from" in r.stderr
    assert quick_status("b")["status"] == "Running"
    assert alive(b["hostAgentPID"]) and alive(b["driverPID"])
    lima("stop", "b", ok=True)
    assert leftovers() == []


def test_lima_stop_f_reaps_everything_after_a_driver_hang(lima, external: Path, fake_template: Path,
                                                          lima_home: Path, instances: list[str], leftovers) -> None:
    """A driver hung in stop: the host agent waits; `lima stop -f` ends it all, and start works again."""
    instances.append("hs")
    lima("create", "--name", "hs", str(fake_template), ok=True)
    set_faults(lima_home, "hs", hangIn={"stop": 300})
    lima("start", "hs", ok=True)
    ha = quick_status("hs")["hostAgentPID"]
    os.kill(ha, signal.SIGTERM)  # the host agent now waits on the hung stop call
    wait_for(lambda: "stopping on SIGTERM" in (lima_home / "hs" / "ha.stderr.log").read_text(), what="stop")
    lima("stop", "-f", "hs", ok=True)
    assert quick_status("hs")["status"] == "Stopped"
    assert leftovers() == []
    set_faults(lima_home, "hs")
    lima("start", "hs", ok=True)
    lima("stop", "hs", ok=True)
    assert leftovers() == []


def test_missing_driver_executable_after_create(lima, tmp_path: Path, driver_bin: Path, fake_template: Path,
                                                lima_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver is uninstalled while an instance exists: start, list, stop, delete still answer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lima-driver-fake").symlink_to(driver_bin / "lima-driver-fake")
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(bin_dir))
    lima("create", "--name", "gone", str(fake_template), ok=True)
    (bin_dir / "lima-driver-fake").unlink()
    one_error_line(lima("start", "gone"), "unknown vmType 'fake'")
    inst = status(lima, "gone")  # its status needs the driver (--inspect-status): Broken, and why
    assert inst["status"] == "Broken" and "unknown vmType 'fake'" in inst["errors"][0]
    lima("stop", "gone", ok=True)
    r = lima("delete", "-f", "gone", ok=True)
    assert "the driver could not clean up" in r.stderr
    assert not (lima_home / "gone").exists()
