"""`lima drivers new`, then `pip install` the project into a clean virtualenv, as a third-party author would.

Right after the install, `lima drivers list` shows the driver, `lima create --vm-type=NAME`
reaches it, and the conformance kit passes against it in-process and external, from an
empty directory and as the project's own tests.
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
    assert f"{NAME} conforms to the driver contract" in out


def test_the_projects_own_tests_pass(scratch_venv, installed: Path) -> None:
    r = scratch_venv.run("pytest", "-q", "-p", "no:cacheprovider", cwd=installed, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
