"""The pytest plugin: `pytest --lima-driver NAME` from an empty directory, and silence without it."""

from __future__ import annotations

import os
import shutil
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
                 "start stream                              passed",
                 "boots to ready                            not checked: booting to READY (SSH and boot-done, as "
                 "`lima start` waits for them) needs a template with a guest the driver can boot: "
                 "--lima-driver-template FILE",
                 "fake is not shown to conform to the driver contract: 1 check(s) not run (boots to ready; "
                 "see above why)"):
        assert line in out, line
    assert "fake conforms" not in out
    assert "10 passed, 1 skipped" in out


@pytest.fixture
def fake_guest(tmp_path: Path) -> tuple[Path, Path]:
    """(a template the fake driver boots, a directory holding a fake ssh that reaches its VM)."""
    from lima_core.testing import fakessh

    image = tmp_path / "guest" / "image.raw"
    image.parent.mkdir()
    image.write_bytes(b"\0" * 65536)
    template = tmp_path / "guest" / "fake-guest.yaml"
    template.write_text("images:\n- location: image.raw\ncpus: 1\nmemory: 256MiB\ndisk: 1GiB\nmounts: []\n")
    ssh_dir = tmp_path / "fake-ssh"
    fakessh.install(ssh_dir)
    return template, ssh_dir


@pytest.mark.parametrize("external", [False, True], ids=["in-process", "external"])
def test_with_a_template_it_boots_to_ready_and_conforms(empty: Path, tmp_path: Path, driver_bin: Path,
                                                        fake_guest: tuple[Path, Path], external: bool) -> None:
    template, ssh_dir = fake_guest
    site = _site(tmp_path, "fake", "lima_core.testing.fakedriver:FakeDriver")
    args = ["--lima-driver", "fake", "--lima-driver-template", str(template)] + \
        (["--lima-driver-external"] if external else [])
    env = {"LIMA_DRIVERS_PATH": str(driver_bin)} if external else {}
    r = run_pytest(empty, *args, pythonpath=[site], LIMA_LOAD_DRIVERS="fake",
                   PATH=f"{ssh_dir}{os.pathsep}{os.environ['PATH']}", **env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "boots to ready                            passed" in r.stdout
    assert "fake conforms to the driver contract (all 11 checks passed)" in r.stdout


def test_a_guest_that_never_answers_does_not_conform(empty: Path, tmp_path: Path, fake_guest: tuple[Path, Path]) -> None:
    """Without the fake ssh nothing reaches the fake VM: the boot to READY times out, and the kit says so."""
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("the host agent needs ssh and ssh-keygen")
    template, _ = fake_guest
    site = _site(tmp_path, "fake", "lima_core.testing.fakedriver:FakeDriver")
    r = run_pytest(empty, "--lima-driver", "fake", "--lima-driver-template", str(template),
                   "--lima-driver-boot-timeout", "4", pythonpath=[site], LIMA_LOAD_DRIVERS="fake")
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("boots to ready                            failed: did not boot to READY within 4 s (the host "
            "agent's last word: \"Waiting for the essential requirement 1 of 3: 'ssh'\")") in r.stdout
    assert "fake does not conform to the driver contract: 1 check(s) failed (boots to ready)" in r.stdout


def test_only_the_kit_is_collected_from_a_folder_with_tests(tmp_path: Path) -> None:
    """Run from a parent folder of a driver project, --lima-driver collects the kit, not the project's tests."""
    parent = tmp_path / "work"
    tests = parent / "lima-driver-x" / "tests"
    tests.mkdir(parents=True)
    (tests / "test_own.py").write_text("def test_own():\n    raise AssertionError('the author test ran')\n")
    (parent / "test_top.py").write_text("def test_top():\n    raise AssertionError('a top test ran')\n")
    site = _site(tmp_path, "fake", "lima_core.testing.fakedriver:FakeDriver")
    r = run_pytest(parent, "--lima-driver", "fake", "-k", "info_before", pythonpath=[site], LIMA_LOAD_DRIVERS="fake")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ran" not in r.stdout and "1 passed" in r.stdout
    # -k left out every other check: that is not conformance either
    assert "fake is not shown to conform to the driver contract: 10 check(s) not run (not selected: " in r.stdout
    r = run_pytest(parent, "--lima-driver", "fake", "-k", "info_before or own", str(tests), pythonpath=[site],
                   LIMA_LOAD_DRIVERS="fake")
    assert "the author test ran" in r.stdout  # a path named on the command line is collected too


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
    assert ("configure keeps unknown fields            failed: configure dropped a lima.yaml field it does not "
            "know (futureField); leave such fields alone") in out
    assert "create is idempotent                      failed: a second create changed the instance directory" in out
    # a RuntimeError is not a typed refusal; the summary names the driver's line, not lima-core's
    line = _source_line(BROKEN_DRIVER, 'raise RuntimeError("boom")')
    assert ("start stream                              failed: DriverError: driver 'forgetful' failed in start: "
            f"boom (at forgetful.py:{line} in start)") in out
    assert "lima_core/host.py" not in out.split("lima driver conformance")[1]
    assert ("forgetful does not conform to the driver contract: 3 check(s) failed (configure keeps unknown fields, "
            "create is idempotent, start stream)") in out


CRASHING_DRIVER = '''
from lima_core import Info, StartHandle, hookimpl


class CrashingDriver:
    """create crashes on a missing key: a driver bug, in-process and in the driver's own process."""

    @hookimpl
    def info(self):
        return Info(name="crashy")

    @hookimpl
    def create(self):
        settings = {}
        return settings["disk_format"]

    @hookimpl
    def start(self):
        return StartHandle()

    @hookimpl
    def stop(self):
        pass
'''


def _source_line(source: str, needle: str) -> int:
    return next(i for i, text in enumerate(source.splitlines(), 1) if needle in text)


@pytest.mark.parametrize("external", [False, True], ids=["in-process", "external"])
def test_a_crash_is_reported_at_the_drivers_line(empty: Path, tmp_path: Path, external: bool) -> None:
    site = _site(tmp_path, "crashy", "crashy:CrashingDriver", "crashy", CRASHING_DRIVER)
    r = run_pytest(empty, "--lima-driver", "crashy", "-k", "idempotent", *(["--lima-driver-external"] * external),
                   pythonpath=[site], LIMA_LOAD_DRIVERS="crashy")
    assert r.returncode == 1, r.stdout + r.stderr
    line = _source_line(CRASHING_DRIVER, 'return settings["disk_format"]')
    where = f"crashy.py:{line} in create" + (", in the driver process" if external else "")
    assert ("create is idempotent                      failed: DriverError: driver 'crashy' failed in create: "
            f"'disk_format' (at {where})") in r.stdout


def test_an_unknown_driver_is_one_clear_error(empty: Path) -> None:
    r = run_pytest(empty, "--lima-driver", "nosuch", "-x", LIMA_LOAD_DRIVERS="")
    assert r.returncode != 0
    assert "no internal driver named 'nosuch'" in r.stdout
