"""Every hint names a command that works in that state: no circles.

For each way an instance can be Broken, every command is run on it (real `lima` processes); each
`lima ...` a message names is then run, on the same state made again, and must succeed. Before,
`lima delete` of a Broken instance said "run `lima stop` first", and `lima stop` then refused.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import hints, no_processes_of, quick_status, run, set_faults, wait_for, wait_status

pytestmark = pytest.mark.usefixtures("fake_ssh")
def status(name: str) -> list[dict]:
    """`lima list --format json NAME` (a real process: the driver's own status included)."""
    import json

    return [json.loads(line) for line in run("list", "--format", "json", name).stdout.splitlines()]


#: `stop` last: in the host-agent-without-VM state it waits for the driver's hung stop, which ends that state
COMMANDS = [["list"], ["start", "b"], ["delete", "b"], ["shell", "b", "--", "true"], ["snapshot", "list", "b"],
            ["stop", "b"]]


def _vm_without_host_agent(lima, lima_home: Path) -> None:
    assert run("start", "b").returncode == 0
    os.kill(quick_status("b")["hostAgentPID"], signal.SIGKILL)
    assert wait_status("b", "Broken")["status"] == "Broken"


def _host_agent_without_vm(lima, lima_home: Path) -> None:
    """The VM ended and the driver's stop hangs: the host agent lives on without a VM."""
    set_faults(lima_home, "b", hangIn={"stop": 20})
    assert run("start", "b").returncode == 0
    os.kill(quick_status("b")["driverPID"], signal.SIGKILL)
    wait_for(lambda: (lima_home / "b" / "fake.hanging.stop").exists(), what="the hang in stop")
    assert wait_status("b", "Broken")["status"] == "Broken"


def _lima_yaml_broken(lima, lima_home: Path) -> None:
    with open(lima_home / "b" / "lima.yaml", "a") as f:
        f.write("cpus: [\n")


def _lima_yaml_missing(lima, lima_home: Path) -> None:
    (lima_home / "b" / "lima.yaml").unlink()


def _driver_uninstalled(lima, lima_home: Path) -> None:
    os.environ["LIMA_DRIVERS_PATH"] += "-gone"


#: state -> (how to make it from a stopped instance, the fake driver: internal or external)
STATES: dict[str, tuple[Callable, str]] = {
    "VM without host agent": (_vm_without_host_agent, "internal"),  # an external driver ends the VM itself
    "host agent without VM": (_host_agent_without_vm, "internal"),
    "lima.yaml broken": (_lima_yaml_broken, "external"),
    "lima.yaml missing": (_lima_yaml_missing, "internal"),
    "driver uninstalled": (_driver_uninstalled, "external"),
}


@pytest.mark.parametrize("state", list(STATES))
def test_every_hint_works_in_its_state(state: str, request: pytest.FixtureRequest, fake_template: Path,
                                       lima_home: Path, monkeypatch: pytest.MonkeyPatch, instances: list[str]) -> None:
    build, mode = STATES[state]
    request.getfixturevalue(mode)
    instances.append("b")
    drivers = os.environ.get("LIMA_DRIVERS_PATH", "")
    monkeypatch.setenv("LIMA_DRIVERS_PATH", drivers)  # restored after each round (the driver state)

    def make() -> None:
        os.environ["LIMA_DRIVERS_PATH"] = drivers
        if (lima_home / "b").exists():
            assert run("delete", "-f", "b").returncode == 0
        assert run("create", "--name", "b", str(fake_template)).returncode == 0
        build(None, lima_home)
        assert status("b")[0]["status"] == "Broken"

    make()
    said: dict[tuple[str, ...], str] = {}
    for args in [["create", "--name", "b", str(fake_template)], *COMMANDS]:
        r = run(*args)
        text = r.stderr + r.stdout
        assert "driver is running" not in text and text.count("`lima stop -f b`") <= 1, (args, text)
        for hint in hints(text):
            said.setdefault(tuple(hint), " ".join(args))
    assert said, "no command named another"
    for hint, by in said.items():
        make()
        t0 = time.monotonic()
        r = run(*hint)
        assert r.returncode == 0, f"`lima {' '.join(hint)}` (named by `lima {by}`) failed in state {state!r}: " \
                                  f"{r.stderr.strip()}"
        assert time.monotonic() - t0 < 30
    os.environ["LIMA_DRIVERS_PATH"] = drivers
    if (lima_home / "b").exists():
        assert run("delete", "-f", "b").returncode == 0
    assert no_processes_of(lima_home) == []
