"""Host faults with the fake driver: concurrent commands on one instance, stop and delete during a start.

(The host agent SIGKILLed, the VM killed, a failed start keeping the instance: tests/cli/test_lifecycle.py;
with real QEMU: test_qemu_faults.py.)
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
from faultkit import Kept, finish, lima_process, one_error_line, quick_status, run, set_faults, wait_for

from lima_core import locks

pytestmark = pytest.mark.usefixtures("fake_ssh")


def _host_agents(lima_home: Path, name: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline", "status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE and p.info["cmdline"]
            and p.info["cmdline"][-2:] == ["hostagent", name]
            and p.environ().get("LIMA_HOME") == str(lima_home)]


def test_two_starts_at_once(lima, driver_mode: str, fake_template: Path, lima_home: Path, instances: list[str],
                            leftovers) -> None:
    instances.append("twice")
    lima("create", "--name", "twice", str(fake_template), ok=True)
    first, second = lima_process("start", "twice"), lima_process("start", "twice")
    results = [finish(first, 60), finish(second, 60)]
    assert [code for code, _, _ in results] == [0, 0], results
    # The second start finds the first one's host agent: the instance is Running by then, or not yet.
    said = sorted("READY" if "READY" in err
                  else "already" if "already running" in err or "already has a host agent" in err else err
                  for _, _, err in results)
    assert said == ["READY", "already"], results
    assert quick_status("twice")["status"] == "Running"
    assert len(_host_agents(lima_home, "twice")) == 1
    lima("stop", "twice", ok=True)
    assert leftovers() == []


def test_stop_while_the_host_agent_is_starting_the_vm(lima, driver_mode: str, fake_template: Path,
                                                      lima_home: Path, instances: list[str], leftovers) -> None:
    """A stop request interrupts a driver call that hangs in the host agent (in-process or external)."""
    instances.append("ss")
    lima("create", "--name", "ss", str(fake_template), ok=True)
    set_faults(lima_home, "ss", hangIn={"additional_setup_for_ssh": 300})
    kept = Kept(lima_home / "ss")
    start = lima_process("start", "ss")
    wait_for(lambda: (lima_home / "ss" / "fake.hanging.additional_setup_for_ssh").exists(), what="the hang")
    assert (lima_home / "ss" / "fakevm.running").exists()  # the VM is up
    t0 = time.monotonic()
    r = lima("stop", "ss", ok=True)
    assert time.monotonic() - t0 < 20
    assert "is stopped" in r.stderr
    code, _, err = finish(start)
    assert code == 1 and "failed to start: stopped (SIGINT) while starting" in err.strip().splitlines()[-1]
    assert quick_status("ss")["status"] == "Stopped"
    assert leftovers() == []
    kept.check()


def test_stop_while_the_cli_prepares(lima, external: Path, fake_template: Path, lima_home: Path,
                                    instances: list[str], leftovers) -> None:
    """Before the host agent runs, `lima stop` says the instance is busy (not "not running")."""
    instances.append("sp")
    lima("create", "--name", "sp", str(fake_template), ok=True)
    (lima_home / "sp" / "disk").rename(lima_home / "sp" / "basedisk")  # no disk yet: the CLI prepares it
    set_faults(lima_home, "sp", hangIn={"create_disk": 300})
    start = lima_process("start", "sp")
    wait_for(lambda: (lima_home / "sp" / "fake.hanging.create_disk").exists(), what="the hang")
    one_error_line(lima("stop", "sp"), "instance 'sp' is being started or changed by another lima command")
    start.send_signal(2)
    code, _, err = finish(start)
    assert code == 130 and "lima: interrupted" in err
    lima("stop", "-f", "sp", ok=True)  # the hung driver server
    assert leftovers() == []


def test_delete_during_a_start(lima, driver_mode: str, fake_template: Path, lima_home: Path, instances: list[str],
                               leftovers) -> None:
    instances.append("dd")
    lima("create", "--name", "dd", str(fake_template), ok=True)
    set_faults(lima_home, "dd", hangIn={"additional_setup_for_ssh": 300})
    kept = Kept(lima_home / "dd")
    start = lima_process("start", "dd")
    wait_for(lambda: (lima_home / "dd" / "fake.hanging.additional_setup_for_ssh").exists(), what="the hang")
    one_error_line(lima("delete", "dd"), "run `lima stop dd` first, or `lima delete -f dd`")
    kept.check()
    lima("delete", "-f", "dd", ok=True)
    assert not (lima_home / "dd").exists()
    code, _, err = finish(start)
    assert code == 1 and "lima: instance 'dd' was deleted while it was starting" in err
    assert not (lima_home / "dd").exists()  # waiting for the lock did not bring it back
    assert leftovers() == []


def test_waiting_for_the_lock_of_a_deleted_instance(short_tmp: Path) -> None:
    """filelock recreates a lock file's directory: a command waiting while `delete` ran made a ghost."""
    import threading

    from lima_core import locks

    d = short_tmp / "inst"
    d.mkdir()
    outcome: list[str] = []

    def waiter() -> None:
        try:
            with locks.exclusive(d / "instance.lock", timeout=10):
                outcome.append("acquired")
        except locks.Gone:
            outcome.append("gone")

    with locks.exclusive(d / "instance.lock", timeout=1):
        assert locks.held(d / "instance.lock")
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.2)
        (d / "instance.lock").unlink()
        d.rmdir()
    t.join(5)
    assert outcome == ["gone"] and not d.exists()
    assert not locks.held(d / "instance.lock") and not d.exists()


def test_delete_while_a_command_tries_the_lock(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                               instances: list[str]) -> None:
    """A command waiting for the instance lock creates the lock file at each try. One landing in the directory
    while `delete -f` emptied it made the removal fail ("Directory not empty"), a flake of
    test_delete_during_a_start; here the waiter tries without pause, so it lands nearly every time."""
    import os
    import threading

    instances.append("tries")
    lima("create", "--name", "tries", str(fake_template), ok=True)
    lock = lima_home / "tries" / "instance.lock"
    done = threading.Event()
    tries = [0]

    def waiter() -> None:  # what locks.exclusive does at each try, without the 50 ms pause between tries
        while not done.is_set():
            try:
                os.close(os.open(lock, os.O_RDWR | os.O_CREAT, 0o644))
                tries[0] += 1
            except FileNotFoundError:
                return

    t = threading.Thread(target=waiter)
    t.start()
    try:
        lima("delete", "-f", "tries", ok=True)
    finally:
        done.set()
        t.join(10)
    assert tries[0] > 0 and not (lima_home / "tries").exists()
    assert not [p.name for p in lima_home.iterdir() if "tries" in p.name]


def test_a_stop_whose_signal_was_lost_ends_a_hung_driver_call(external: Path, lima, fake_template: Path,
                                                              lima_home: Path, instances: list[str],
                                                              leftovers, capsys: pytest.CaptureFixture) -> None:
    """The stop signal's exception may never reach the host agent's main thread (Python drops one raised
    while a finalizer runs). A stop asked without it still cancels the external driver's call that hangs
    and stops the VM, which a running host agent must not wait out."""
    from lima_core.external import server
    from lima_core.hostagent.agent import INTERRUPT_GRACE, HostAgent

    instances.append("lost")
    lima("create", "--name", "lost", str(fake_template), ok=True)
    set_faults(lima_home, "lost", hangIn={"additional_setup_for_ssh": 300})
    agent = HostAgent("lost", lima_home / "lost")  # no signal handler: stops are asked by request_stop only
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(agent.run()), daemon=True)
    runner.start()
    wait_for(lambda: (lima_home / "lost" / "fake.hanging.additional_setup_for_ssh").exists(), what="the hang")
    assert (lima_home / "lost" / "fakevm.running").exists()
    t0 = time.monotonic()
    agent.request_stop("lost signal")
    runner.join(60)
    # Within the grace and the driver server's shutdown, which does not wait for the hung hook.
    assert codes == [1] and time.monotonic() - t0 < INTERRUPT_GRACE + server.SHUTDOWN_GRACE + 5
    assert '"errors": ["stopped (lost signal) while starting"]' in capsys.readouterr().out
    assert not (lima_home / "lost" / "fakevm.running").exists()
    assert leftovers() == []


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3, 0.6])
def test_a_stop_that_arrives_early_still_stops(delay: float, lima, external: Path, fake_template: Path,
                                               lima_home: Path, instances: list[str], leftovers) -> None:
    """`lima stop` while `lima start` holds the instance to launch the driver and the host agent: it said
    "being started; run `lima stop` again", and the start then completed. Now the stop waits for the host
    agent and stops it."""
    instances.append("early")
    lima("create", "--name", "early", str(fake_template), ok=True)
    # The guest is not ready before the stop comes, however fast the start is (the stop ends the wait).
    set_faults(lima_home, "early", hangIn={"additional_setup_for_ssh": 60})
    start = lima_process("start", "early")
    wait_for(lambda: locks.held(lima_home / "early" / "instance.lock"), what="the start to hold the instance")
    time.sleep(delay)
    try:
        r = run("stop", "early")
    except subprocess.TimeoutExpired:
        log = (lima_home / "early" / "ha.stderr.log").read_text(errors="replace").splitlines()
        pytest.fail("the stop did not end; the host agent's log ends with:\n" + "\n".join(log[-30:]))
    code, _, err = finish(start, 60)
    assert r.returncode == 0 and "is stopped" in r.stderr, r.stderr
    assert code == 1 and "lima: instance 'early' failed to start" in err.strip().splitlines()[-1], err
    assert quick_status("early")["status"] == "Stopped"
    assert leftovers() == []
