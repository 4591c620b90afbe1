"""Fixtures for lima-driver-qemu's tests: isolation, the test guest, a driver executable, an SSH key."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lima_core.external.build import write_executable

from qemutest import GUEST_ENV, guest_dir


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir per test session: the KVM probe runs once, never in the developer's ~/.cache."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                  _session_cache: Path) -> None:
    monkeypatch.setenv("LIMA_HOME", str(tmp_path_factory.mktemp("lima-home")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(_session_cache))
    for var in ("LIMA_QEMU_ACCEL", "QEMU_SYSTEM_X86_64", "LIMA_TRACE_DRIVERS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory under /tmp: unix socket paths are limited to 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="lq-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def driver_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``lima-driver-qemu`` made by lima-core's build helper."""
    bin_dir = tmp_path_factory.mktemp("driver-bin")
    write_executable(bin_dir, "qemu", "lima_driver_qemu.driver:QemuDriver")
    return bin_dir


# -- the test guest ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def guest() -> Path:
    d = guest_dir()
    if d is None:
        pytest.skip(f"the test guest is not built: run scripts/build-test-guest (or set ${GUEST_ENV})")
    if shutil.which("qemu-system-x86_64") is None or shutil.which("ssh") is None:
        pytest.skip("qemu-system-x86_64 and ssh are needed to boot the test guest")
    return d


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lima-qemu-test", "-f", str(key)],
                   check=True)
    return key
