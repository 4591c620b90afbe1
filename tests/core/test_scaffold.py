"""`lima drivers new`: what it writes, without installing it (tests/authors installs it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lima_core import hookspecs
from lima_core.cli import drivers_new


def test_names_follow_the_driver_name() -> None:
    assert drivers_new.names("my-vm") == {
        "__NAME__": "my-vm", "__DIST__": "lima-driver-my-vm", "__PACKAGE__": "lima_driver_my_vm",
        "__CLASS__": "MyVmDriver", "__LIMA_CORE_VERSION__": drivers_new.names("x")["__LIMA_CORE_VERSION__"]}


@pytest.mark.parametrize("bad", ["", "Upper", "under_score", "-lead", "trail-", "two--hyphens", "9lives", "a/b"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(Exception, match="invalid driver name"):
        drivers_new.names(bad)


def test_the_driver_class_has_a_method_for_every_hook() -> None:
    files = drivers_new.render("probe")
    tree = ast.parse(files["lima_driver_probe/driver.py"])
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ProbeDriver")
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    missing = [h for h in hookspecs.HOOKS if h not in methods]
    assert not missing, f"the scaffold's driver lacks {missing}: add them to lima_core/scaffold/package/driver.py.tmpl"
    for hook in hookspecs.HOOKS:
        assert ast.get_docstring(methods[hook]), f"the scaffold's {hook} has no docstring"
    required = [h for h in hookspecs.HOOKS if hookspecs.FALLBACKS[h].policy == "required"]
    for hook in required:
        decorators = [ast.unparse(d) for d in methods[hook].decorator_list]
        assert "hookimpl" in decorators, f"the required hook {hook} is not marked @hookimpl"


def test_every_generated_file_is_complete(tmp_path: Path) -> None:
    project = drivers_new.write("probe", tmp_path)
    assert project == tmp_path / "lima-driver-probe"
    names = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert names == ["MANIFEST.in", "README.md", "lima_driver_probe/__init__.py", "lima_driver_probe/_version.py",
                     "lima_driver_probe/data/boot.Linux/10-probe.sh", "lima_driver_probe/driver.py",
                     "lima_driver_probe/placeholder_vm.py", "pyproject.toml", "tests/conftest.py",
                     "tests/test_conformance.py", "tests/test_driver.py", "tests/test_publish.py"]
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "__NAME__" not in text and "__PACKAGE__" not in text and "__CLASS__" not in text, path
            if path.suffix == ".py":
                compile(text, str(path), "exec")
    pyproject = (project / "pyproject.toml").read_text()
    assert '[project.entry-points."lima.drivers"]\nprobe = "lima_driver_probe.driver:ProbeDriver"' in pyproject
    assert 'lima-driver-probe = "lima_driver_probe:main"' in pyproject
    # what the driver reads at run time is package data, so the wheel holds it
    assert '[tool.setuptools.package-data]\nlima_driver_probe = ["data/**/*"]' in pyproject


def test_the_generated_tests_use_only_the_public_sdk() -> None:
    """docs/authors.md lists what authors may import; the generated project imports nothing else of lima_core."""
    public = {"lima_core", "lima_core.errors", "lima_core.external", "lima_core.filenames", "lima_core.pidfile",
              "lima_core.mounts", "lima_core.network", "lima_core.testing.conformance", "lima_core.testing.target",
              "lima_core.testing.publish"}
    for path, text in drivers_new.render("probe").items():
        if not path.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lima_core"):
                import lima_core

                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    ok = name in public or (node.module in public and (node.module != "lima_core"
                                                                       or alias.name in lima_core.__all__))
                    assert ok, f"{path} imports {name}, which is not public SDK"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("lima_core") or alias.name in public, (path, alias.name)


def test_cli_writes_and_refuses_to_overwrite(lima_runner, tmp_path: Path) -> None:
    r = lima_runner("drivers", "new", "probe", "--dest", str(tmp_path))
    assert r.exit_code == 0, r.stderr
    assert "Wrote" in r.stderr and (tmp_path / "lima-driver-probe" / "pyproject.toml").exists()
    r = lima_runner("drivers", "new", "probe", "--dest", str(tmp_path))
    assert r.exit_code == 1
    assert "already exists" in r.stderr


@pytest.fixture
def lima_runner():
    from typer.testing import CliRunner

    from lima_core.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))
