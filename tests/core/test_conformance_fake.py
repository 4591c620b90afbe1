"""The conformance suite against the in-tree fake driver, in-process and external,
and a session of every hook giving the same outcomes both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lima_core.external import supervisor
from lima_core.external.client import connect
from lima_core.host import DriverHost
from lima_core.testing.conformance import (
    ConformanceSuite,
    DriverUnderTest,
    call_outcome,
    capability_report,
    new_instance,
)
from lima_core.testing.fakedriver import FakeDriver


@pytest.fixture(params=["in-process", "external"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_host(mode: str, driver_bin: Path) -> Iterator[Any]:
    made: list[tuple[DriverHost, Path]] = []

    def make(instance_dir: Path) -> DriverHost:
        instance_dir.mkdir(parents=True, exist_ok=True)
        if mode == "in-process":
            host = DriverHost(FakeDriver(), "fake")
        else:
            host = connect(str(driver_bin / "lima-driver-fake"), "fake", instance_dir)
        made.append((host, instance_dir))
        return host

    yield make
    for _host, instance_dir in made:
        supervisor.stop_servers(instance_dir)


class TestFakeDriverConformance(ConformanceSuite):
    @pytest.fixture
    def driver_factory(self, mode: str, make_host: Any) -> DriverUnderTest:
        return DriverUnderTest("fake", mode, make_host, boot_config={})


def _session(host: DriverHost, inst_dir: Path, config: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Call every hook once; record (hook, outcome, value) in a comparable form."""
    inst = new_instance(inst_dir, "fake", config)
    out: list[tuple[str, str, Any]] = []

    def rec(hook: str, fn: Any, norm: Any = lambda v: v) -> Any:
        kind, value = call_outcome(fn)
        out.append((hook, kind, norm(value) if kind == "ok" else value))
        return value

    rec("info", host.info, lambda i: {**i.to_json(), "instanceDir": ""})
    rec("configure", lambda: host.configure(inst), lambda i: i.to_json())
    rec("info.configured", host.info, lambda i: i.to_json())
    rec("validate", host.validate)
    rec("create", host.create)
    rec("create_disk", host.create_disk)
    rec("boot_scripts", host.boot_scripts)
    rec("inspect_status", lambda: host.inspect_status(inst.copy()))
    rec("forward_guest_agent", host.forward_guest_agent)
    rec("guest_agent_conn", host.guest_agent_conn)
    rec("ssh_address", host.ssh_address)
    rec("additional_setup_for_ssh", host.additional_setup_for_ssh)
    rec("change_display_password", lambda: host.change_display_password(password="abcd1234"))
    rec("display_connection", host.display_connection)
    rec("run_gui", host.run_gui)
    rec("capture_screenshot", lambda: host.capture_screenshot(format="png"))
    rec("check_host", host.check_host)
    rec("create_snapshot", lambda: host.create_snapshot(tag="s1"))
    rec("create_snapshot.again", lambda: host.create_snapshot(tag="s1"))
    rec("list_snapshots", host.list_snapshots)
    rec("apply_snapshot", lambda: host.apply_snapshot(tag="s1"))
    rec("apply_snapshot.missing", lambda: host.apply_snapshot(tag="nope"))
    rec("delete_snapshot", lambda: host.delete_snapshot(tag="s1"))
    handle = rec("start", host.start, lambda h: "handle")
    if hasattr(handle, "next"):
        events = [handle.next(timeout=5) for _ in range(len(config.get("vmOpts", {}).get("fake", {}).get("startErrors", [])))]
        out.append(("start.events", "ok", [e.error if e else None for e in events]))
        rec("stop", host.stop)
        end = handle.next(timeout=15)
        out.append(("start.end", "ok", end.ended if end else None))
    out.append(("capabilities", "ok", capability_report(host)))
    return out


@pytest.mark.parametrize("config", [
    {"vmOpts": {"fake": {"startErrors": ["disk is slow", "clock skew"]}}, "someFutureField": [1]},
    {"vmOpts": {"fake": {"invalid": "needs a bigger boat", "failStart": "no such accelerator"}}},
], ids=["happy", "failing"])
def test_every_hook_gives_the_same_result_both_ways(config: dict[str, Any], tmp_path: Path, driver_bin: Path) -> None:
    inproc_dir, ext_dir = tmp_path / "a" / "inst", tmp_path / "b" / "inst"
    inproc_dir.mkdir(parents=True)
    ext_dir.mkdir(parents=True)
    inproc = _session(DriverHost(FakeDriver(), "fake"), inproc_dir, config)
    try:
        external = _session(connect(str(driver_bin / "lima-driver-fake"), "fake", ext_dir), ext_dir, config)
    finally:
        supervisor.stop_servers(ext_dir)

    def scrub(rows: list[tuple[str, str, Any]], d: Path) -> list[tuple[str, str, Any]]:
        text = repr(rows).replace(str(d), "<dir>")
        return eval(text)  # noqa: S307 - our own repr of plain data

    assert scrub(external, ext_dir) == scrub(inproc, inproc_dir)
    outcomes = {hook: kind for hook, kind, _ in inproc}
    assert outcomes["run_gui"] == "UnsupportedOperation"
    assert outcomes["capture_screenshot"] == "NoDisplay"
    assert outcomes["apply_snapshot.missing"] == "DriverError"
    if "invalid" in str(config):
        assert outcomes["validate"] == "ValidationError" and outcomes["start"] == "StartFailed"
