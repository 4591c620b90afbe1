"""Fixtures shared by every test: an isolated LIMA_HOME and driver executables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lima_core.external.build import write_executable

FAKE_DRIVER = "lima_core.testing.fakedriver:FakeDriver"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's ~/.lima, driver paths or tracing settings."""
    home = tmp_path_factory.mktemp("lima-home")
    monkeypatch.setenv("LIMA_HOME", str(home))
    for var in ("LIMA_DRIVERS_PATH", "LIMA_LOAD_DRIVERS", "LIMA_EXTERNAL_DRIVERS", "LIMA_TRACE_DRIVERS"):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture
def lima_home() -> Path:
    return Path(os.environ["LIMA_HOME"])


@pytest.fixture(scope="session")
def driver_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``lima-driver-fake`` (the in-tree fake driver as an executable)."""
    bin_dir = tmp_path_factory.mktemp("driver-bin")
    write_executable(bin_dir, "fake", FAKE_DRIVER)
    return bin_dir


@pytest.fixture
def short_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A short directory for unix sockets (paths are limited to 108 bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lc-", dir="/tmp") as d:
        yield Path(d)
