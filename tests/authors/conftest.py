"""A scratch virtualenv holding lima-core as pip installs it from this checkout, shared by the session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: the tiny test guest's template (scripts/build-test-guest builds what it names)
GUEST_TEMPLATE = REPO / "templates" / "test-guest.yaml"
GUEST = REPO / ".cache" / "test-guest" / "current"


class Venv:
    """A virtualenv; run its commands with a clean lima environment."""

    def __init__(self, path: Path, lima_home: Path) -> None:
        self.path = path
        self.bin = path / "bin"
        self.lima_home = lima_home

    #: lima-core's wheel, built from this checkout
    wheel: Path

    def install(self, *requirements: str | Path) -> float:
        """``pip install`` into this venv (with the running interpreter's pip); returns the seconds it took."""
        started = time.monotonic()
        self.run(sys.executable, "-m", "pip", "--python", self.bin / "python", "install", "-q", *requirements)
        return time.monotonic() - started

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LIMA_", "PYTHON", "PYTEST_", "VIRTUAL_ENV"))}
        env.update(LIMA_HOME=str(self.lima_home), PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
                   PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}", **extra)
        return env

    def run(self, *args: str | Path, cwd: Path | None = None, check: bool = True, timeout: float = 600,
            **env: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / str(args[0])) if (self.bin / str(args[0])).exists() else str(args[0]),
               *map(str, args[1:])]
        proc = subprocess.run(cmd, cwd=cwd, env=self.env(**env), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited with {proc.returncode}\n{proc.stdout[-4000:]}\n"
                                 f"{proc.stderr[-4000:]}")
        return proc


def _copy_source(dest: Path) -> Path:
    """lima-core's distribution files, copied: the build writes nothing into the shared checkout."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "lima_core", dest / "lima_core", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.fixture(scope="session")
def scratch_venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh virtualenv (without pip: this interpreter's pip installs into it) and lima-core's wheel.

    The wheel is built from a copy of this checkout with this interpreter's setuptools (no
    build isolation, nothing downloaded). Tests install it with ``venv.install(...)``, which
    fetches lima-core's dependencies as a user's pip would.
    """
    base = tmp_path_factory.mktemp("scratch")
    src = _copy_source(base / "lima-core")
    wheels = base / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)]
    if subprocess.run([*build, "--no-build-isolation"], capture_output=True, timeout=300).returncode != 0:
        # This interpreter's setuptools is too old for lima-core's pyproject: let pip fetch one.
        subprocess.run(build, check=True, capture_output=True, timeout=300)
    venv = Venv(base / "venv", tmp_path_factory.mktemp("lima-home"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv.path)], check=True, timeout=300)
    venv.wheel = next(wheels.glob("lima_core-*.whl"))
    return venv


@pytest.fixture(scope="session")
def guest_template() -> Path:
    """templates/test-guest.yaml, when its guest is built and this host can boot it."""
    if not all((GUEST / f).is_file() for f in ("vmlinux", "initrd.img", "disk.qcow2")):
        pytest.skip("the test guest is not built: run scripts/build-test-guest")
    for tool in ("qemu-system-x86_64", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed to boot the test guest")
    return GUEST_TEMPLATE


def fresh_venv(tmp_path_factory: pytest.TempPathFactory, scratch_venv: Venv, name: str) -> Venv:
    """Another new virtualenv (without pip: this interpreter's pip installs into it)."""
    venv = Venv(tmp_path_factory.mktemp(name), tmp_path_factory.mktemp(f"{name}-home"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv.path)], check=True,
                   timeout=300)
    venv.wheel = scratch_venv.wheel
    return venv


def build_wheel(project: Path, dest: Path) -> Path:
    """The project's wheel, built as `pip wheel` builds it (with this setuptools when it is recent enough)."""
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(project)]
    if subprocess.run([*build, "--no-build-isolation"], capture_output=True, timeout=300).returncode != 0:
        subprocess.run(build, check=True, capture_output=True, timeout=300)
    (wheel,) = dest.glob("*.whl")
    return wheel
