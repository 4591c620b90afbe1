"""Fixtures for lima-driver-vz tests: an isolated LIMA_HOME, a fake framework, a Mac described as facts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lima_driver_vz import running
from lima_driver_vz.driver import VZDriver
from lima_driver_vz.hostinfo import HostFacts
from lima_driver_vz.testing import fakevz

from lima_core.host import DriverHost
from lima_core.limatype import Instance
from lima_core.testing.conformance import new_instance


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LIMA_HOME", str(tmp_path_factory.mktemp("lima-home")))
    for var in ("LIMA_DRIVERS_PATH", "LIMA_LOAD_DRIVERS", "LIMA_EXTERNAL_DRIVERS", "LIMA_TRACE_DRIVERS",
                "LIMA_VZ_FRAMEWORK"):
        monkeypatch.delenv(var, raising=False)
    yield
    for vm in list(running._registry.values()):  # never leak a fake VM into the next test
        running.finished(vm)


@pytest.fixture
def fake() -> Any:
    return fakevz.bindings()


@pytest.fixture
def mac_facts() -> HostFacts:
    return HostFacts(system="Darwin", macos=(15, 5), arch="aarch64")


@pytest.fixture
def make(fake: Any, mac_facts: HostFacts, tmp_path: Path) -> Callable[..., tuple[DriverHost, Instance]]:
    """(host, instance) for a configured vz driver on a described Mac, with the fake framework."""

    def make(config: dict[str, Any] | None = None, facts: HostFacts | None = None, name: str = "inst",
             framework: Any = None) -> tuple[DriverHost, Instance]:
        facts = facts or mac_facts
        cfg = {"arch": facts.arch, "images": [{"location": "/x/image", "arch": facts.arch}], **(config or {})}
        inst = new_instance(tmp_path / name, "vz", cfg)
        host = DriverHost(VZDriver(framework=framework or fake, host=facts), "vz")
        host.configure(inst)
        return host, inst

    return make
