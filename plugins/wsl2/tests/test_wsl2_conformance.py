"""The lima-core conformance suite for wsl2, in-process and external, booting with the fake wsl.exe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lima_driver_wsl2.driver import WSL2Driver
from wsl2_helpers import FakeWSL

from lima_core import cidata, filenames
from lima_core.external import supervisor
from lima_core.external.build import write_executable
from lima_core.external.client import connect, inspect_status
from lima_core.host import DriverHost
from lima_core.limatype import Instance
from lima_core.testing.conformance import ConformanceSuite, DriverUnderTest, new_instance
from lima_core.users import guest_user


@pytest.fixture(scope="module")
def wsl2_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("wsl2-bin")
    write_executable(bin_dir, "wsl2", "lima_driver_wsl2.driver:WSL2Driver")
    return bin_dir


@pytest.fixture(params=["in-process", "external"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def prepare_boot(host: DriverHost, inst: Instance) -> None:
    """What the host does before start: the downloaded rootfs, and cidata as a directory (noCloudInit)."""
    (Path(inst.dir) / filenames.IMAGE).write_bytes(b"\x1f\x8b fake rootfs")
    cidata.generate(inst, host.info(), host.boot_scripts(), guest_user(inst.config), ["ssh-ed25519 AAAA test"])
    assert (Path(inst.dir) / filenames.CIDATA_DIR / "ssh_authorized_keys").exists()


@pytest.fixture
def driver_factory(mode: str, wsl2_bin: Path, fake_wsl: FakeWSL) -> Iterator[DriverUnderTest]:
    made: list[Path] = []

    def make(instance_dir: Path) -> DriverHost:
        instance_dir.mkdir(parents=True, exist_ok=True)
        made.append(instance_dir)
        if mode == "external":
            return connect(str(wsl2_bin / "lima-driver-wsl2"), "wsl2", instance_dir)
        return DriverHost(WSL2Driver(), "wsl2")

    yield DriverUnderTest("wsl2", mode, make, boot_config={"images": [{"location": "/x/rootfs.tar.gz"}]},
                          prepare_boot=prepare_boot)
    for d in made:
        supervisor.stop_servers(d)


class TestWSL2Conformance(ConformanceSuite):
    pass


def test_inspect_status_protocol(wsl2_bin: Path, fake_wsl: FakeWSL, tmp_path: Path) -> None:
    """`lima-driver-wsl2 --inspect-status`: how `lima list` learns an external wsl2 instance's state."""
    fake_wsl.distros([{"name": "lima-dev", "state": "Running", "version": 2}])
    fake_wsl.behave(ip="172.30.0.4")
    inst = new_instance(tmp_path / "dev", "wsl2")
    assert inspect_status(str(wsl2_bin / "lima-driver-wsl2"), inst) == "Running"
    assert (inst.status, inst.ssh_local_port, inst.ssh_address) == ("Running", 22, "172.30.0.4")
    fake_wsl.distros([])
    inst = new_instance(tmp_path / "dev", "wsl2")
    assert inspect_status(str(wsl2_bin / "lima-driver-wsl2"), inst) == "Uninitialized"
    fake_wsl.behave(fail={"--list": "The Windows Subsystem for Linux is not installed."})
    inst = new_instance(tmp_path / "dev", "wsl2")
    assert inspect_status(str(wsl2_bin / "lima-driver-wsl2"), inst) == "Broken"
    assert "The Windows Subsystem for Linux is not installed." in inst.errors[0]
