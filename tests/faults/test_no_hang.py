"""A driver that stops answering never freezes lima: every call has a deadline or yields to Ctrl-C
(exit 130 and a clear message), and the next command handles the instance.

Real `lima` processes, so Ctrl-C is a real SIGINT.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from faultkit import alive, finish, lima_process, quick_status, run, set_faults, status, wait_for

pytestmark = pytest.mark.usefixtures("fake_ssh")
INTERRUPTED = "lima: interrupted; the instance is left as it was at that moment (`lima list` shows its state)"


def _ctrl_c(proc, marker: Path) -> tuple[int, str]:
    try:
        wait_for(lambda: marker.exists() or proc.poll() is not None, what=marker.name)
    except AssertionError:
        proc.kill()
        raise AssertionError(f"no {marker.name} within 20 s; lima said: {proc.communicate()[1]!r}") from None
    assert marker.exists(), f"lima exited with {proc.returncode} before {marker.name}: {proc.communicate()[1]!r}"
    time.sleep(0.3)  # well inside the hung call
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, 10)
    assert time.monotonic() - t0 < 5, "Ctrl-C took too long"
    return code, err


def test_ctrl_c_during_a_hung_driver_call_in_the_cli(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                                     instances: list[str], leftovers) -> None:
    """create_disk has no deadline (it may copy gigabytes): Ctrl-C must get through, in-process or external."""
    instances.append("c")
    lima("create", "--name", "c", str(fake_template), ok=True)
    (lima_home / "c" / "disk").rename(lima_home / "c" / "basedisk")  # no disk yet: the CLI prepares it
    set_faults(lima_home, "c", hangIn={"create_disk": 300})
    code, err = _ctrl_c(lima_process("start", "c"), lima_home / "c" / "fake.hanging.create_disk")
    assert code == 130 and err.strip().splitlines()[-1] == INTERRUPTED, err
    assert "Traceback" not in err
    assert quick_status("c")["status"] == "Stopped"
    set_faults(lima_home, "c")
    lima("start", "c", ok=True)  # the lock is free, a hung external server is not reused blindly
    lima("stop", "c", ok=True)
    assert leftovers() == []


def test_ctrl_c_while_the_host_agent_hangs_then_stop(lima, driver_mode: str, fake_template: Path,
                                                     lima_home: Path, instances: list[str], leftovers) -> None:
    """The CLI waits on a host agent whose driver hangs in start: Ctrl-C leaves it; `lima stop` ends it quickly."""
    instances.append("h")
    lima("create", "--name", "h", str(fake_template), ok=True)
    set_faults(lima_home, "h", hangIn={"start": 300})
    code, err = _ctrl_c(lima_process("start", "h"), lima_home / "h" / "fake.hanging.start")
    assert code == 130 and err.strip().splitlines()[-1] == INTERRUPTED, err
    t0 = time.monotonic()
    r = lima("stop", "h", ok=True)
    assert time.monotonic() - t0 < 20 and "is stopped" in r.stderr
    assert quick_status("h")["status"] == "Stopped"
    assert leftovers() == []


def test_ctrl_c_during_a_stop_that_hangs_then_stop_f(lima, driver_mode: str, fake_template: Path,
                                                     lima_home: Path, instances: list[str], leftovers) -> None:
    instances.append("s")
    lima("create", "--name", "s", str(fake_template), ok=True)
    set_faults(lima_home, "s", hangIn={"stop": 300})
    lima("start", "s", ok=True)
    code, err = _ctrl_c(lima_process("stop", "s"), lima_home / "s" / "fake.hanging.stop")
    assert code == 130 and err.strip().splitlines()[-1] == INTERRUPTED, err
    lima("stop", "-f", "s", ok=True)
    assert quick_status("s")["status"] == "Stopped"
    assert leftovers() == []
    set_faults(lima_home, "s")
    lima("start", "s", ok=True)
    lima("stop", "s", ok=True)
    assert leftovers() == []


def test_list_with_a_driver_that_does_not_answer(lima, external: Path, fake_template: Path, lima_home: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    for module in ("lima_core.external.client", "lima_core.external.status"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, "INSPECT_STATUS_TIMEOUT"):
            monkeypatch.setattr(mod, "INSPECT_STATUS_TIMEOUT", 1.0)
    lima("create", "--name", "l", str(fake_template), ok=True)
    set_faults(lima_home, "l", hangIn={"inspect_status": 300})
    t0 = time.monotonic()
    inst = status(lima, "l")
    assert time.monotonic() - t0 < 10
    assert inst["status"] == "Broken" and "did not answer within" in inst["errors"][0], inst
    lima("delete", "-f", "l", ok=True)  # the next command handles it
    assert not (lima_home / "l").exists()


def test_stop_with_a_frozen_external_driver(lima, external: Path, fake_template: Path, lima_home: Path,
                                            instances: list[str], leftovers) -> None:
    """A driver stopped by SIGSTOP never answers `stop` (a call without deadline): the host agent gives up on it
    in seconds, stops the VM through a fresh driver process and says so. It waited 190 s and failed."""
    instances.append("fr")
    lima("create", "--name", "fr", str(fake_template), ok=True)
    assert run("start", "fr").returncode == 0
    driver = int((lima_home / "fr" / "fake.drv.pid").read_text())
    vm = quick_status("fr")["driverPID"]
    os.kill(driver, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = run("stop", "fr", timeout=60)
        took = time.monotonic() - t0
    finally:
        if alive(driver):
            os.kill(driver, signal.SIGCONT)
    assert r.returncode == 0 and "is stopped" in r.stderr, r.stderr
    assert took < 15, took
    assert f"the fake driver process (pid {driver}) is frozen (stopped by a signal)" in r.stderr
    assert "stopped the VM through a new driver process" in r.stderr
    assert not alive(driver) and not alive(vm)
    assert quick_status("fr")["status"] == "Stopped"
    assert leftovers() == []
    assert run("start", "fr").returncode == 0  # and it starts again
    assert run("stop", "fr").returncode == 0
    assert leftovers() == []


def test_stop_with_a_frozen_host_agent(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                       instances: list[str], leftovers) -> None:
    """A host agent stopped by SIGSTOP cannot act on SIGINT: stop gives up on it in seconds and does what
    `stop -f` does, saying so."""
    instances.append("fh")
    lima("create", "--name", "fh", str(fake_template), ok=True)
    assert run("start", "fh").returncode == 0
    inst = quick_status("fh")
    os.kill(inst["hostAgentPID"], signal.SIGSTOP)
    t0 = time.monotonic()
    r = run("stop", "fh", timeout=60)
    assert r.returncode == 0 and "is stopped" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 15
    assert f"the host agent of 'fh' (pid {inst['hostAgentPID']}) is frozen (stopped by a signal)" in r.stderr
    assert "stopping the instance forcibly" in r.stderr
    assert not alive(inst["hostAgentPID"]) and not alive(inst["driverPID"])
    assert quick_status("fh")["status"] == "Stopped"
    assert leftovers() == []
