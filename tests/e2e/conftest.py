"""End-to-end fixtures: the real `lima` command, real QEMU, the test guest, real ssh."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from limae2e import BIN, GUEST


@pytest.fixture(scope="session")
def guest() -> Path:
    if not all((GUEST / f).is_file() for f in ("vmlinux", "initrd.img", "disk.qcow2")):
        pytest.skip("the test guest is not built: run scripts/build-test-guest")
    for tool in ("qemu-system-x86_64", "qemu-img", "ssh"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed for the end-to-end tests")
    if not (BIN / "lima-driver-qemu").exists():
        pytest.skip("lima-driver-qemu is not installed in this environment")
    return GUEST


@pytest.fixture(scope="session")
def xdg_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: the qemu driver's KVM probe runs once."""
    return tmp_path_factory.mktemp("xdg-cache")


class Lima:
    """The installed `lima` command, run as a user runs it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, ok: bool | None = True, timeout: float = 180) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(BIN / "lima"), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if ok is True:
            assert proc.returncode == 0, f"lima {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
        if ok is False:
            assert proc.returncode != 0, f"lima {' '.join(args)} should have failed:\n{proc.stdout}{proc.stderr}"
        return proc


@pytest.fixture
def lima_env(guest: Path, xdg_cache: Path) -> Iterator[dict[str, str]]:
    """A short LIMA_HOME under /tmp (unix socket paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="le-", dir="/tmp") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
        env.update(LIMA_HOME=home, XDG_CACHE_HOME=str(xdg_cache), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
        yield env
        for name in os.listdir(home):
            if not name.startswith("_"):
                subprocess.run([str(BIN / "lima"), "delete", "-f", name], env=env, capture_output=True, timeout=120)


@pytest.fixture
def lima(lima_env: dict[str, str]) -> Lima:
    return Lima(lima_env)
