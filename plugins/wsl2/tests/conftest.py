"""Fixtures for lima-driver-wsl2 tests: an isolated LIMA_HOME and the fake wsl.exe."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lima_core.host import DriverHost
from lima_core.limatype import Instance
from lima_core.testing.conformance import new_instance
from lima_driver_wsl2 import WSL2Driver
from lima_driver_wsl2.testing import fakewsl


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LIMA_HOME", str(tmp_path_factory.mktemp("lima-home")))
    for var in ("LIMA_DRIVERS_PATH", "LIMA_LOAD_DRIVERS", "LIMA_EXTERNAL_DRIVERS", "LIMA_TRACE_DRIVERS",
                "LIMA_WSL_EXE", "FAKE_WSL_STATE", "WSL_UTF8"):
        monkeypatch.delenv(var, raising=False)
    yield


class FakeWSL:
    """The fake wsl.exe selected for this test, and its state folder."""

    def __init__(self, exe: Path, state: Path) -> None:
        self.exe = exe
        self.state = state

    def behave(self, **behaviour: Any) -> None:
        (self.state / "behaviour.json").write_text(json.dumps(behaviour))

    def distros(self, distros: list[dict[str, Any]], default: str | None = None) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "distros.json").write_text(json.dumps({"default": default, "distros": distros}))

    def listed(self) -> dict[str, Any]:
        return json.loads((self.state / "distros.json").read_text())

    def wait_for_keep_alive(self, timeout: float = 20) -> None:
        """Until the driver's keep-alive command has reached the fake (wsl.exe takes a moment to start)."""
        import time

        deadline = time.monotonic() + timeout
        while not any(c[-1:] == ["nohup sleep 2147483647d >/dev/null 2>&1"] for c in self.calls()):
            assert time.monotonic() < deadline, "the keep-alive command never ran"
            time.sleep(0.05)

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


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
