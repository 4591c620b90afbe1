"""Fixtures for lima-driver-wsl2 tests: an isolated LIMA_HOME and the fake wsl.exe."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lima_driver_wsl2.driver import WSL2Driver
from lima_driver_wsl2.testing import fakewsl
from wsl2_helpers import FakeWSL

from lima_core.host import DriverHost
from lima_core.limatype import Instance
from lima_core.testing.conformance import new_instance


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LIMA_HOME", str(tmp_path_factory.mktemp("lima-home")))
    for var in ("LIMA_DRIVERS_PATH", "LIMA_LOAD_DRIVERS", "LIMA_EXTERNAL_DRIVERS", "LIMA_TRACE_DRIVERS",
                "LIMA_WSL_EXE", "FAKE_WSL_STATE", "WSL_UTF8"):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture
def fake_wsl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeWSL:
    exe = fakewsl.install(tmp_path / "bin")
    state = tmp_path / "wsl-state"
    state.mkdir()
    monkeypatch.setenv("LIMA_WSL_EXE", str(exe))
    monkeypatch.setenv("FAKE_WSL_STATE", str(state))
    return FakeWSL(exe, state)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs.tar.gz"
    path.write_bytes(b"\x1f\x8b fake tarball")
    return path


@pytest.fixture
def make(tmp_path: Path, rootfs: Path) -> Callable[..., tuple[DriverHost, Instance]]:
    def make(config: dict[str, Any] | None = None, name: str = "inst",
             parent: Path | None = None) -> tuple[DriverHost, Instance]:
        inst = new_instance((parent or tmp_path) / name, "wsl2",
                            {"images": [{"location": str(rootfs)}], **(config or {})})
        host = DriverHost(WSL2Driver(), "wsl2")
        host.configure(inst)
        return host, inst

    return make
