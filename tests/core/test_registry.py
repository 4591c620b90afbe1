"""Discovery: every rule of Lima's (reference §3.2-3.3), with real files, plus entry points."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from lima_core import filenames, registry
from lima_core.errors import DriverLoadError, DriverNotFound


def make_exe(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(path, mode)
    return path


def fake_dist(root: Path, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str] | None = None) -> None:
    """A distribution installed into *root* (dist-info metadata, as pip writes it)."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[lima.drivers]\n{lines}\n")
    for name, source in (modules or {}).items():
        (root / f"{name}.py").write_text(source)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


@pytest.fixture
def argv0(tmp_path: Path) -> str:
    """A `lima` in <prefix>/bin with no libexec, so only what a test adds is found."""
    return str(make_exe(tmp_path / "prefix" / "bin" / "lima"))


def discover(argv0: str, **env: str) -> registry.Registry:
    base = {"LIMA_HOME": os.environ["LIMA_HOME"]}
    return registry.discover(argv0=argv0, env={**base, **env})


DRIVER_SRC = """
from lima_core import hookimpl, Info, StartHandle
class D:
    @hookimpl
    def info(self): return Info(name="{name}")
    @hookimpl
    def start(self): return StartHandle()
    @hookimpl
    def stop(self): pass
"""


def test_entry_points_are_listed_without_import(site: Path, argv0: str) -> None:
    fake_dist(site, "lima-driver-alpha", "1.2.3", {"alpha": "alpha_mod:D"},
              {"alpha_mod": "raise RuntimeError('imported!')\n"})
    reg = discover(argv0)
    entry = reg.get("alpha")
    assert entry.kind == "internal" and entry.location == "internal"
    assert (entry.distribution, entry.version) == ("lima-driver-alpha", "1.2.3")
    assert "alpha_mod" not in sys.modules


def test_broken_driver_is_reported_by_name_and_others_work(site: Path, argv0: str) -> None:
    fake_dist(site, "lima-driver-broken", "0.1", {"broken": "broken_mod:D"},
              {"broken_mod": "import does_not_exist_anywhere\n"})
    fake_dist(site, "lima-driver-good", "0.1", {"good": "good_mod:D"}, {"good_mod": DRIVER_SRC.format(name="good")})
    reg = discover(argv0)
    with pytest.raises(DriverLoadError, match=r"driver 'broken' \(from lima-driver-broken 0.1\) failed to import: "
                                              r"ModuleNotFoundError"):
        reg.load("broken")
    assert reg.load("good").info().name == "good"


def test_load_drivers_allow_list(site: Path, argv0: str) -> None:
    fake_dist(site, "d1", "1", {"one": "m:D", "two": "m:D"})
    assert {"one", "two"} <= set(discover(argv0).names())
    assert set(discover(argv0, LIMA_LOAD_DRIVERS="two").names()) & {"one", "two"} == {"two"}
    assert set(discover(argv0, LIMA_LOAD_DRIVERS="").names()) & {"one", "two"} == set()


def test_drivers_path_order_first_wins(tmp_path: Path, argv0: str) -> None:
    a = make_exe(tmp_path / "a" / "lima-driver-x")
    make_exe(tmp_path / "b" / "lima-driver-x")
    single = make_exe(tmp_path / "single" / "lima-driver-y")
    reg = discover(argv0, LIMA_DRIVERS_PATH=os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b"), str(single)]))
    assert reg.get("x").location == str(a)
    assert [s.location for s in reg.get("x").shadows] == [str(tmp_path / "b" / "lima-driver-x")]
    assert reg.get("y").location == str(single)


def test_scan_is_not_recursive_and_needs_exec_bit_and_name(tmp_path: Path, argv0: str) -> None:
    d = tmp_path / "d"
    make_exe(d / "sub" / "lima-driver-nested")
    make_exe(d / "lima-driver-noexec", mode=0o644)
    make_exe(d / "lima-driver-win.exe")
    make_exe(d / "not-a-driver")
    (d / "lima-driver-dir").mkdir()
    make_exe(d / "lima-driver-ok")
    reg = discover(argv0, LIMA_DRIVERS_PATH=str(d))
    assert set(reg.names()) & {"nested", "noexec", "win", "win.exe", "dir", "ok"} == {"ok"}


def test_unreadable_entries_are_warned_and_skipped(tmp_path: Path, argv0: str) -> None:
    good = make_exe(tmp_path / "good" / "lima-driver-g")
    missing = tmp_path / "missing"
    not_driver = make_exe(tmp_path / "plain-file")
    reg = discover(argv0, LIMA_DRIVERS_PATH=os.pathsep.join([str(missing), str(not_driver), str(good.parent)]))
    assert "g" in reg.names()
    assert any(str(missing) in w for w in reg.warnings)
    assert any(str(not_driver) in w for w in reg.warnings)


def test_world_writable_driver_is_refused(tmp_path: Path, argv0: str) -> None:
    exe = make_exe(tmp_path / "ww" / "lima-driver-ww", mode=0o777)
    reg = discover(argv0, LIMA_DRIVERS_PATH=str(exe.parent))
    assert "ww" not in reg.names()
    assert any("world-writable" in w and "chmod o-w" in w for w in reg.warnings)


def test_libexec_and_lib_of_each_prefix(tmp_path: Path) -> None:
    real_prefix = tmp_path / "cellar"
    lima = make_exe(real_prefix / "bin" / "lima")
    make_exe(real_prefix / "lib" / "lima" / "lima-driver-fromlib")
    link_prefix = tmp_path / "usr"
    (link_prefix / "bin").mkdir(parents=True)
    (link_prefix / "bin" / "lima").symlink_to(lima)
    make_exe(link_prefix / "libexec" / "lima" / "lima-driver-fromlinked")
    reg = discover(str(link_prefix / "bin" / "lima"))
    assert reg.get("fromlinked").source == "libexec"  # argv[0]'s own prefix, symlink not resolved
    assert reg.get("fromlib").source == "libexec"  # the resolved executable's prefix
    assert registry.libexec_dirs(str(link_prefix / "bin" / "lima")) == [
        link_prefix / "libexec" / "lima", real_prefix / "lib" / "lima"]


def test_argv0_found_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lima = make_exe(tmp_path / "p" / "bin" / "lima")
    make_exe(tmp_path / "p" / "libexec" / "lima" / "lima-driver-pathy")
    monkeypatch.setenv("PATH", str(lima.parent))
    assert "pathy" in discover("lima").names()


def test_drivers_path_beats_libexec(tmp_path: Path, argv0: str) -> None:
    make_exe(Path(argv0).parent.parent / "libexec" / "lima" / "lima-driver-z")
    env_one = make_exe(tmp_path / "env" / "lima-driver-z")
    reg = discover(argv0, LIMA_DRIVERS_PATH=str(env_one.parent))
    assert reg.get("z").location == str(env_one)


def test_internal_wins_unless_configured_external(site: Path, tmp_path: Path, argv0: str, lima_home: Path) -> None:
    fake_dist(site, "lima-driver-q", "1", {"q": "qmod:D"})
    exe = make_exe(tmp_path / "ext" / "lima-driver-q")
    reg = discover(argv0, LIMA_DRIVERS_PATH=str(exe.parent))
    assert reg.get("q").kind == "internal"
    assert reg.get("q").shadows[0].location == str(exe)

    reg = discover(argv0, LIMA_DRIVERS_PATH=str(exe.parent), LIMA_EXTERNAL_DRIVERS="q")
    assert reg.get("q").kind == "external" and reg.get("q").location == str(exe)
    assert reg.get("q").shadows[0].kind == "internal"

    (lima_home / "_config").mkdir(parents=True)
    (lima_home / "_config" / "drivers.yaml").write_text("external: [q]\n")
    assert discover(argv0, LIMA_DRIVERS_PATH=str(exe.parent)).get("q").kind == "external"


def test_configured_external_falls_back_to_console_script(site: Path, tmp_path: Path) -> None:
    fake_dist(site, "lima-driver-cs", "1", {"cs": "csmod:D"})
    lima = make_exe(tmp_path / "venv" / "bin" / "lima")
    script = make_exe(lima.parent / "lima-driver-cs")
    reg = discover(str(lima), LIMA_EXTERNAL_DRIVERS="cs")
    assert reg.get("cs").location == str(script) and reg.get("cs").source == "console script"


def test_configured_external_without_executable_says_what_to_do(site: Path, argv0: str) -> None:
    fake_dist(site, "lima-driver-nox", "1", {"nox": "m:D"})
    with pytest.raises(DriverNotFound, match="lima drivers build-external nox"):
        discover(argv0, LIMA_EXTERNAL_DRIVERS="nox").get("nox")


def test_unknown_driver_lists_what_exists(tmp_path: Path, argv0: str) -> None:
    make_exe(tmp_path / "e" / "lima-driver-there")
    with pytest.raises(DriverNotFound, match=r"unknown vmType 'nope'.*available: .*there"):
        discover(argv0, LIMA_DRIVERS_PATH=str(tmp_path / "e")).get("nope")


def test_bad_drivers_yaml_is_warned(lima_home: Path, argv0: str) -> None:
    (lima_home / "_config").mkdir(parents=True)
    (lima_home / "_config" / "drivers.yaml").write_text("external: qemu\n")
    assert any("drivers.yaml" in w for w in discover(argv0).warnings)


@pytest.mark.parametrize(("filename", "windows", "expected"), [
    ("lima-driver-qemu", False, "qemu"), ("lima-driver-qemu.exe", False, None), ("lima-driver-", False, None),
    ("lima-driver-qemu.exe", True, "qemu"), ("lima-driver-qemu", True, None), ("limactl", False, None),
    ("lima-driver-wsl2.EXE", True, "wsl2"), ("lima-driver-.exe", True, None),
    ("/usr/local/libexec/lima/lima-driver-vz", False, "vz"), ("/opt/lima-driver-x/limactl", False, None),
])
def test_driver_name_rule(filename: str, windows: bool, expected: str | None) -> None:
    """Lima's rule (reference §3.2), for a file found by discovery and for a driver's own argv[0] alike."""
    assert filenames.driver_name(filename, windows=windows) == expected


def test_driver_executable_name() -> None:
    assert filenames.driver_executable("qemu", windows=False) == "lima-driver-qemu"
    assert filenames.driver_executable("wsl2", windows=True) == "lima-driver-wsl2.exe"
    for windows in (False, True):
        assert filenames.driver_name(filenames.driver_executable("x", windows), windows) == "x"
