"""lima-core's driver conformance suite against the qemu driver, in-process and external.

The suite's start-stream test boots the test guest (when it is built) and stops it half a
second later, while the guest is still booting: stop has to press the power button again
once the guest listens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from lima_core import pidfile
from lima_core.external import supervisor
from lima_core.external.client import connect
from lima_core.host import DriverHost
from lima_core.limatype import Instance
from lima_core.testing.conformance import ConformanceSuite, DriverUnderTest

from lima_driver_qemu.driver import QemuDriver
from qemutest import guest_config, guest_dir, place_guest, write_cidata

#: the directory name the suite's start test uses (conformance.test_start_stream)
BOOT_DIR = "boot"


@pytest.fixture(params=["in-process", "external"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_host(mode: str, driver_bin: Path) -> Iterator[Any]:
    made: list[Path] = []
    guest = guest_dir()

    def make(instance_dir: Path) -> DriverHost:
        instance_dir.mkdir(parents=True, exist_ok=True)
        if instance_dir.name == BOOT_DIR and guest is not None and not (instance_dir / "image").exists():
            place_guest(instance_dir, guest)  # what the host's create does before create_disk
        made.append(instance_dir)
        if mode == "in-process":
            return DriverHost(QemuDriver(), "qemu")
        return connect(str(driver_bin / "lima-driver-qemu"), "qemu", instance_dir)

    yield make
    for instance_dir in made:
        supervisor.stop_servers(instance_dir)
        pid_path = instance_dir / "qemu.pid"
        proc = pidfile.read(pid_path, expect=str(pid_path)).process
        if proc is not None:  # a failed test must not leave a VM behind
            with contextlib.suppress(psutil.Error):
                proc.kill()


class TestQemuConformance(ConformanceSuite):
    @pytest.fixture
    def driver_factory(self, mode: str, make_host: Any, ssh_key: Path) -> DriverUnderTest:
        boot_config = guest_config() if guest_dir() is not None else None

        def prepare_boot(host: DriverHost, inst: Instance) -> None:
            write_cidata(host, inst, ssh_key)

        return DriverUnderTest("qemu", mode, make_host, boot_config=boot_config, prepare_boot=prepare_boot)
