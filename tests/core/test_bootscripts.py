"""lima_core.bootscripts: a driver's boot scripts read from its package data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lima_core import bootscripts, cidata
from lima_core.errors import DriverError


@pytest.fixture
def package(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An importable package ``bootpkg_<n>`` with a ``boot`` folder, removed from sys.modules afterwards."""
    name = f"bootpkg_{abs(hash(tmp_path)) % 10**8}"
    root = tmp_path / name
    (root / "boot").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    yield name, root
    sys.path.remove(str(tmp_path))
    sys.modules.pop(name, None)


def test_every_script_sorted_and_keyed_for_linux(package: tuple[str, Path]) -> None:
    name, root = package
    (root / "boot" / "10-b.sh").write_bytes(b"#!/bin/sh\necho b\n")
    (root / "boot" / "05-a.sh").write_bytes(b"#!/bin/sh\necho a\n")
    (root / "boot" / ".hidden").write_bytes(b"x")
    (root / "boot" / "__init__.py").write_bytes(b"")
    (root / "boot" / "sub").mkdir()
    scripts = bootscripts.load(name)
    assert list(scripts) == ["boot.Linux/05-a.sh", "boot.Linux/10-b.sh"]
    assert scripts["boot.Linux/05-a.sh"] == b"#!/bin/sh\necho a\n"
    assert cidata.normalize_boot_scripts(scripts) == scripts  # what the host accepts, unchanged


def test_named_scripts_other_folder_and_os(package: tuple[str, Path]) -> None:
    name, root = package
    (root / "scripts").mkdir()
    (root / "scripts" / "b.sh").write_bytes(b"b")
    (root / "scripts" / "a.sh").write_bytes(b"a")
    assert list(bootscripts.load(name, "scripts", os="FreeBSD", names=["b.sh", "a.sh"])) == [
        "boot.FreeBSD/b.sh", "boot.FreeBSD/a.sh"]


@pytest.mark.parametrize("call, message", [
    (lambda n: bootscripts.load(n, names=["missing.sh"]), "missing.sh: it is not in the installed package"),
    (lambda n: bootscripts.load(n, "nowhere"), "/nowhere is not a directory in the installed package"),
    (lambda n: bootscripts.load(n), "/boot holds no script"),
    (lambda n: bootscripts.load(n, names=["../x.sh"]), "invalid boot script name '../x.sh'"),
    (lambda n: bootscripts.load(n, os="Linux/x"), "invalid guest OS name"),
    (lambda n: bootscripts.load("no_such_package_here"), "package 'no_such_package_here' is not importable"),
    (lambda n: bootscripts.load(None), "pass __package__"),
])
def test_packaging_mistakes_are_one_clear_error(package: tuple[str, Path], call, message: str) -> None:
    with pytest.raises(DriverError) as err:
        call(package[0])
    assert message in err.value.message

