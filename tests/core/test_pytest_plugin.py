"""The pytest plugin: `pytest --lima-driver NAME` from an empty directory, and silence without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN_DRIVER = '''
from lima_core import Info, StartHandle, hookimpl


class ForgetfulDriver:
    """Breaks the contract: configure drops fields it does not know; create is not idempotent."""

    def __init__(self):
        self.instance = None

    @hookimpl
    def info(self):
        return Info(name="forgetful")

    @hookimpl
    def configure(self, instance):
        instance.config.extra.clear()
        self.instance = instance

    @hookimpl
    def create(self):
        import os, pathlib
        pathlib.Path(self.instance.dir, os.urandom(4).hex()).write_text("")

    @hookimpl
    def start(self):
        raise RuntimeError("boom")

    @hookimpl
    def stop(self):
        pass
'''


def _site(tmp_path: Path, name: str, target: str, module: str = "", source: str = "") -> Path:
    site = tmp_path / f"site-{name}"
    info = site / f"lima_driver_{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lima-driver-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[lima.drivers]\n{name} = {target}\n")
    if module:
        (site / f"{module}.py").write_text(source)
    return site


def run_pytest(cwd: Path, *args: str, pythonpath: list[Path] = (), **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environ["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), *filter(None, [environ.get("PYTHONPATH")])])
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_without_the_option_it_does_nothing(empty: Path) -> None:
    r = run_pytest(empty)
    assert r.returncode == 5  # no tests collected
    assert "lima driver conformance" not in r.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, lima_core.testing.plugin; "
                            "print(sorted(m for m in ('grpc', 'lima_core.host', 'lima_core.registry') if m in sys.modules))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"  # cheap: loaded into every pytest run


@pytest.mark.parametrize("external", [False, True], ids=["in-process", "external"])
def test_checks_an_installed_driver_from_an_empty_directory(empty: Path, tmp_path: Path, driver_bin: Path,
                                                           external: bool) -> None:
    site = _site(tmp_path, "fake", "lima_core.testing.fakedriver:FakeDriver")
    args = ["--lima-driver", "fake"] + (["--lima-driver-external"] if external else [])
    env = {"LIMA_DRIVERS_PATH": str(driver_bin)} if external else {}
    r = run_pytest(empty, *args, pythonpath=[site], LIMA_LOAD_DRIVERS="fake", **env)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    mode = "external" if external else "in-process"
    assert f"lima driver conformance: fake ({mode})" in out
    if external:
        assert f"{driver_bin / 'lima-driver-fake'} (found by LIMA_DRIVERS_PATH)" in out
    else:
        assert "entry point lima_core.testing.fakedriver:FakeDriver (lima-driver-fake 0.1)" in out
    for line in ("lifecycle    implemented", "snapshots    implemented", "gui          unsupported",
                 "start stream                              passed", "fake conforms to the driver contract"):
        assert line in out, line
    assert "10 passed" in out or "9 passed" in out


def test_external_without_an_executable_builds_one(empty: Path, tmp_path: Path) -> None:
    site = _site(tmp_path, "fake", "lima_core.testing.fakedriver:FakeDriver")
    r = run_pytest(empty, "--lima-driver", "fake", "--lima-driver-external", "-k", "info_before",
                   pythonpath=[site], LIMA_LOAD_DRIVERS="fake")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(written from entry point lima_core.testing.fakedriver:FakeDriver)" in r.stdout


def test_a_driver_that_breaks_the_contract_fails(empty: Path, tmp_path: Path) -> None:
    site = _site(tmp_path, "forgetful", "forgetful:ForgetfulDriver", "forgetful", BROKEN_DRIVER)
    r = run_pytest(empty, "--lima-driver", "forgetful", pythonpath=[site], LIMA_LOAD_DRIVERS="forgetful")
    assert r.returncode == 1
    out = r.stdout
    assert "configure keeps unknown fields            failed" in out
    assert "create is idempotent                      failed" in out
    assert "start stream                              failed" in out  # a RuntimeError is not a typed refusal
    assert "forgetful does not conform to the driver contract (3 check(s) failed)" in out


def test_an_unknown_driver_is_one_clear_error(empty: Path) -> None:
    r = run_pytest(empty, "--lima-driver", "nosuch", "-x", LIMA_LOAD_DRIVERS="")
    assert r.returncode != 0
    assert "no internal driver named 'nosuch'" in r.stdout
