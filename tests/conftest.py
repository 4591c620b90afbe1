"""Fixtures shared by every test: an isolated LIMA_HOME and driver executables; the cloud-init test guest
(tests/guests.py); for tests that drive the CLI (tests/cli, tests/faults): the fake driver (in-process or
external), a fake ssh, a template, and a check for leftover processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from guests import CloudGuest, find_cloud_guest
from typer.testing import CliRunner

from lima_core.cli import app
from lima_core.external.build import write_executable
from lima_core.testing import fakessh

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
def proto_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of ``*_pb2.py`` and ``*_pb2_grpc.py`` generated now by protoc from ``proto/*.proto``,
    as the author of a driver in another language generates them: peers that share no code with lima_core."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("protoc-out")
    proto_dir = Path(__file__).resolve().parents[1] / "proto"
    include = Path(protoc.__file__).parent / "_proto"
    assert protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", *map(str, sorted(proto_dir.glob("*.proto")))]) == 0
    return out


@pytest.fixture(scope="session")
def driver_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``lima-driver-fake`` (the in-tree fake driver as an executable)."""
    bin_dir = tmp_path_factory.mktemp("driver-bin")
    write_executable(bin_dir, "fake", FAKE_DRIVER)
    return bin_dir


@pytest.fixture(scope="session")
def cloud_guest() -> CloudGuest:
    """The Debian test guest with real cloud-init and its templates (tests/guests.py); the test is
    skipped when it is not built."""
    found = find_cloud_guest()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture
def short_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A short directory for unix sockets (paths are limited to 108 bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lc-", dir="/tmp") as d:
        yield Path(d)


# -- the CLI ----------------------------------------------------------------------------------------


class Lima:
    """Runs `lima ARGS` through typer's CliRunner; stdout and stderr kept apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, ok: bool | None = None) -> object:
        result = self.runner.invoke(app, list(args), input=input)
        if ok is True:
            assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        if ok is False:
            assert result.exit_code != 0, (args, result.stdout, result.stderr)
        return result


@pytest.fixture
def lima() -> Lima:
    return Lima()


@pytest.fixture(scope="session")
def fake_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory where a distribution registers the fake driver as internal."""
    site = tmp_path_factory.mktemp("fake-site")
    info = site / "lima_driver_fake-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lima-driver-fake\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lima.drivers]\nfake = lima_core.testing.fakedriver:FakeDriver\n")
    return site


@pytest.fixture(params=["internal", "external"])
def driver_mode(request: pytest.FixtureRequest, fake_site: Path, driver_bin: Path,
                monkeypatch: pytest.MonkeyPatch) -> str:
    """The fake driver, installed as an entry point (internal) or found on LIMA_DRIVERS_PATH (external).

    Other installed drivers (qemu, vz, wsl2) are kept out with LIMA_LOAD_DRIVERS.
    """
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "fake" if request.param == "internal" else "")
    if request.param == "internal":
        monkeypatch.syspath_prepend(str(fake_site))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(fake_site),
                                                                       os.environ.get("PYTHONPATH")])))
    else:
        monkeypatch.setenv("LIMA_DRIVERS_PATH", str(driver_bin))
    return request.param


@pytest.fixture
def fake_ssh(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path_factory.mktemp("fake-ssh")
    fakessh.install(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


@pytest.fixture
def fake_template(tmp_path: Path) -> Path:
    image = tmp_path / "image.raw"
    image.write_bytes(b"\0" * 65536)
    path = tmp_path / "fake.yaml"
    path.write_text(f"vmType: fake\nimages:\n- location: {image}\ncpus: 1\nmemory: 256MiB\ndisk: 1GiB\nmounts: []\n")
    return path


@pytest.fixture
def instances(lima_home: Path) -> Iterator[list[str]]:
    """Names to clean up: any instance still running at the end is stopped by force."""
    names: list[str] = []
    yield names
    for name in names:
        if (lima_home / name).exists():
            subprocess.run([sys.executable, "-m", "lima_core", "stop", "-f", name], capture_output=True, timeout=60)


@pytest.fixture
def leftovers(lima_home: Path) -> Any:
    """A function listing live processes started for this LIMA_HOME (host agents, drivers, VMs).

    Processes get 5 s to finish exiting (a host agent removes ha.pid before its interpreter exits).
    """

    def check() -> list[str]:
        deadline = time.monotonic() + 5
        while (found := _leftovers(lima_home)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return found

    return check


def _leftovers(lima_home: Path) -> list[str]:
    out = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["pid"] == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            env = proc.environ()
        except psutil.Error:
            continue
        if env.get("LIMA_HOME") == str(lima_home):
            out.append(f"{proc.info['pid']}: {' '.join(proc.info['cmdline'] or [])}")
    return out
