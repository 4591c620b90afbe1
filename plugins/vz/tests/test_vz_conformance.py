"""The lima-core conformance suite for vz: in-process and external, as this host allows.

On a host without Virtualization.framework vz cannot boot, so those runs have
no boot_config. A third run uses the fake framework on a described Mac, so the
start stream is exercised too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lima_driver_vz import identifier
from lima_driver_vz.driver import VZDriver
from lima_driver_vz.hostinfo import HostFacts
from lima_driver_vz.testing import fakevz
from vz_helpers import MAC

from lima_core import filenames
from lima_core.external import supervisor
from lima_core.external.build import write_executable
from lima_core.external.client import connect
from lima_core.host import DriverHost
from lima_core.limatype import Instance
from lima_core.testing.conformance import ConformanceSuite, DriverUnderTest

CAN_BOOT_HERE = HostFacts.current().is_macos and HostFacts.current().macos >= (13,)


@pytest.fixture(scope="module")
def vz_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("vz-bin")
    write_executable(bin_dir, "vz", "lima_driver_vz.driver:VZDriver")
    return bin_dir


@pytest.fixture(params=["in-process", "external", "in-process-fake-framework"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def _prepare_boot(host: DriverHost, inst: Instance) -> None:
    """What the host agent writes before start: cidata."""
    (Path(inst.dir) / filenames.CIDATA_ISO).write_bytes(b"\0" * 2048)


@pytest.fixture
def driver_factory(mode: str, vz_bin: Path) -> Iterator[DriverUnderTest]:
    made: list[Path] = []

    def make(instance_dir: Path) -> DriverHost:
        instance_dir.mkdir(parents=True, exist_ok=True)
        made.append(instance_dir)
        if mode == "external":
            return connect(str(vz_bin / "lima-driver-vz"), "vz", instance_dir)
        if mode == "in-process":
            return DriverHost(VZDriver(), "vz")
        (instance_dir / filenames.IMAGE).write_bytes(b"\0" * 4096)  # as downloaded before create_disk
        return DriverHost(VZDriver(framework=fakevz.bindings(), host=MAC), "vz")

    fake = mode == "in-process-fake-framework"
    boot = {"arch": MAC.arch, "images": [{"location": "/x", "arch": MAC.arch}]} if fake else None
    if mode != "in-process-fake-framework" and CAN_BOOT_HERE:
        pytest.skip("booting a real VM is not part of the unit tests")
    yield DriverUnderTest("vz", mode, make, boot_config=boot, prepare_boot=_prepare_boot if fake else None)
    for d in made:
        supervisor.stop_servers(d)


class TestVZConformance(ConformanceSuite):
    pass


def test_external_and_in_process_agree(vz_bin: Path, tmp_path: Path) -> None:
    from lima_core.testing.conformance import call_outcome, new_instance

    outcomes = []
    for mode, d in (("in", tmp_path / "a" / "inst"), ("ext", tmp_path / "b" / "inst")):
        d.mkdir(parents=True)
        host = DriverHost(VZDriver(), "vz") if mode == "in" else connect(str(vz_bin / "lima-driver-vz"), "vz", d)
        try:
            inst = new_instance(d, "vz")
            host.configure(inst)
            row: list[Any] = [inst.config.to_json(), host.info().features.to_json()]
            for fn in (host.validate, host.check_host, host.create, host.list_snapshots, host.display_connection,
                       lambda h=host: h.capture_screenshot(format="png"), host.guest_agent_conn):
                row.append(call_outcome(fn))
            row.append(sorted(host.boot_scripts()))
            row.append(identifier.path(d).exists())
            outcomes.append(repr(row).replace(str(d), "<dir>"))
        finally:
            supervisor.stop_servers(d)
    assert outcomes[0] == outcomes[1]
    if not CAN_BOOT_HERE:
        assert "vz needs macOS 13 or later; this host runs" in outcomes[0]
        assert "driver 'vz' does not support snapshots" in outcomes[0]
