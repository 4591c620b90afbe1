"""`lima drivers new`, then `pip install` the project into a clean virtualenv, as a third-party author would.

Right after the install, `lima drivers list` shows the driver, `lima create --vm-type=NAME`
reaches it (from the offline template:empty too), and the conformance kit passes every check it
can run against it, in-process and external, from an empty directory and as the project's own
tests (whose tests/test_publish.py builds its wheel and checks it in yet another virtualenv). The
kit never says the placeholder conforms: without a template the boot is not checked, and with the
test guest's template it does not boot to READY.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from lima_core.cli import drivers_new

NAME = "scaffy"


@pytest.fixture(scope="module")
def installed(scratch_venv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lima-core's wheel and the generated project, installed by one ``pip install``."""
    with zipfile.ZipFile(scratch_venv.wheel) as whl:
        shipped = set(whl.namelist())
    assert "lima_core/scaffold/package/driver.py.tmpl" in shipped  # the templates are package data
    project = drivers_new.write(NAME, tmp_path_factory.mktemp("authors"))
    seconds = scratch_venv.install(scratch_venv.wheel, f"{project}[test]")
    print(f"pip install lima-core + lima-driver-{NAME}: {seconds:.1f} s", file=sys.stderr)
    return project


def test_lima_drivers_new_works_from_the_installed_wheel(scratch_venv, installed: Path, tmp_path: Path) -> None:
    r = scratch_venv.run("lima", "drivers", "new", "other", "--dest", tmp_path)
    assert "Wrote" in r.stderr
    assert (tmp_path / "lima-driver-other" / "lima_driver_other" / "driver.py").read_text() == \
        drivers_new.render("other")["lima_driver_other/driver.py"]


def test_drivers_list_shows_it(scratch_venv, installed: Path) -> None:
    rows = json.loads(scratch_venv.run("lima", "drivers", "list", "--format", "json").stdout)
    mine = [r for r in rows if r["name"] == NAME]
    assert mine and mine[0]["kind"] == "internal" and mine[0]["available"] == "yes"
    assert mine[0]["distribution"] == f"lima-driver-{NAME} 0.1.0"
    rows = json.loads(scratch_venv.run("lima", "drivers", "list", "--format", "json",
                                       LIMA_EXTERNAL_DRIVERS=NAME).stdout)
    ext = next(r for r in rows if r["name"] == NAME)
    assert ext["kind"] == "external" and ext["location"].endswith(f"bin/lima-driver-{NAME}")
    assert ext["available"] == "yes"
    assert ext["distribution"] == f"lima-driver-{NAME} 0.1.0"  # the console script's distribution


@pytest.mark.parametrize("external", [False, True], ids=["internal", "external"])
def test_create_reaches_the_driver(scratch_venv, installed: Path, tmp_path: Path, external: bool) -> None:
    image = tmp_path / "image.raw"
    image.write_bytes(b"\0" * 4096)
    template = tmp_path / "t.yaml"
    template.write_text(f"images:\n- location: {image}\ncpus: 1\nmemory: 256MiB\ndisk: 1GiB\nmounts: []\n")
    name = f"c{int(external)}"
    env = {"LIMA_EXTERNAL_DRIVERS": NAME} if external else {}
    r = scratch_venv.run("lima", "create", f"--vm-type={NAME}", "--name", name, template, **env)
    assert f"with the {NAME} driver" in r.stderr
    inst = scratch_venv.lima_home / name
    assert (inst / f"{NAME}-identifier").exists()  # written by the scaffold's create hook
    assert (inst / "disk").read_bytes() == image.read_bytes()  # its create_disk
    assert json.loads((inst / "driver.json").read_text())["name"] == NAME
    scratch_venv.run("lima", "delete", name, **env)


def test_create_from_the_offline_empty_template(scratch_venv, installed: Path) -> None:
    r = scratch_venv.run("lima", "create", f"--vm-type={NAME}", "--name", "try", "template:empty")
    assert f"with the {NAME} driver" in r.stderr
    assert (scratch_venv.lima_home / "try" / "disk").stat().st_size == 0  # the empty image, by create_disk
    scratch_venv.run("lima", "delete", "try")


@pytest.mark.parametrize("external", [False, True], ids=["in-process", "external"])
def test_the_kit_passes_from_an_empty_directory(scratch_venv, installed: Path, tmp_path: Path,
                                                external: bool) -> None:
    args = ["pytest", "--lima-driver", NAME, "-p", "no:cacheprovider"] + (["--lima-driver-external"] if external else [])
    r = scratch_venv.run(*args, cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert f"lima driver conformance: {NAME} ({'external' if external else 'in-process'})" in out
    assert "snapshots    unsupported" in out
    assert "lifecycle    implemented" in out
    assert "start stream                              passed" in out
    assert "boots to ready                            not checked: booting to READY" in out
    assert f"{NAME} is not shown to conform to the driver contract: 1 check(s) not run (boots to ready" in out
    assert f"{NAME} conforms" not in out


@pytest.mark.vm
def test_the_placeholder_does_not_boot_the_test_guest(scratch_venv, installed: Path, guest_template: Path,
                                                      tmp_path: Path) -> None:
    """Given a guest to boot, the kit fails the placeholder: nothing answers SSH."""
    r = scratch_venv.run("pytest", "--lima-driver", NAME, "-p", "no:cacheprovider", "-k", "boots_to_ready",
                         "--lima-driver-template", guest_template, "--lima-driver-boot-timeout", "15",
                         cwd=tmp_path, check=False)
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert "boots to ready                            failed: did not boot to READY within 15 s (the host " \
           "agent's last word: \"Waiting for the essential requirement 1 of 3: 'ssh'\")" in out
    assert f"{NAME} does not conform to the driver contract: 1 check(s) failed (boots to ready)" in out


def test_the_projects_own_tests_pass(scratch_venv, installed: Path) -> None:
    """Its tests, the conformance kit and tests/test_publish.py (a wheel in a fresh virtualenv) among them."""
    r = scratch_venv.run("pytest", "-q", "-p", "no:cacheprovider", "-rA", cwd=installed, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "PASSED tests/test_publish.py::test_the_sdist_and_the_wheel_hold_every_data_file" in out
    for mode in ("in-process", "external"):
        assert f"PASSED tests/test_publish.py::test_the_installed_wheel_passes_the_kit[{mode}]" in out
    assert "the kit did not boot a guest; set GUEST_TEMPLATE" in out  # and it says so
