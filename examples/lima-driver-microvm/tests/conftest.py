"""Fixtures for lima-driver-microvm's tests: the test guest, a short LIMA_HOME, a template."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from microvm_helpers import GUEST_ENV, guest_dir, write_template


@pytest.fixture(scope="session")
def guest() -> Path:
    d = guest_dir()
    if d is None:
        pytest.skip(f"the test guest is not built, or lacks virtio_mmio: run scripts/build-test-guest "
                    f"(or set ${GUEST_ENV})")
    if shutil.which("qemu-system-x86_64") is None or shutil.which("ssh") is None:
        pytest.skip("qemu-system-x86_64 and ssh are needed to boot the test guest")
    return d


@pytest.fixture(scope="session")
def accel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One KVM probe per test session, cached outside the user's ~/.cache."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def _isolated(accel_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short LIMA_HOME (unix socket paths), no driver settings from the developer's environment."""
    with tempfile.TemporaryDirectory(prefix="lmv-", dir="/tmp") as home:
        monkeypatch.setenv("LIMA_HOME", home)
        monkeypatch.setenv("XDG_CACHE_HOME", str(accel_cache))
        for var in ("LIMA_DRIVERS_PATH", "LIMA_EXTERNAL_DRIVERS", "LIMA_TRACE_DRIVERS"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("LIMA_LOAD_DRIVERS", "microvm")
        yield Path(home)
        for inst in Path(home).iterdir():
            if (inst / "lima.yaml").exists():
                subprocess.run([sys.executable, "-m", "lima_core", "delete", "-f", inst.name], capture_output=True,
                               timeout=120)


@pytest.fixture
def lima_home(_isolated: Path) -> Path:
    return _isolated


@pytest.fixture
def template(guest: Path, tmp_path: Path) -> Path:
    return write_template(tmp_path / "microvm.yaml", guest, shutdownTimeout=20)
