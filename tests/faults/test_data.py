"""Data faults: no failure path deletes disk, lima.yaml or snapshots; a failed create leaves no half
instance; a full disk gives a clear error. (A driver killed during create: test_external_driver.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import Kept, one_error_line, quick_status, set_faults

pytestmark = pytest.mark.usefixtures("fake_ssh")


def test_no_failure_path_deletes_data(lima, internal: Path, fake_template: Path, lima_home: Path,
                                      monkeypatch: pytest.MonkeyPatch, instances: list[str], leftovers) -> None:
    instances.append("keep")
    lima("create", "--name", "keep", str(fake_template), ok=True)
    lima("snapshot", "create", "keep", "--tag", "s1", ok=True)
    d = lima_home / "keep"
    yaml_path = d / "lima.yaml"

    def failing(*args: str, fragment: str = "") -> None:
        one_error_line(lima(*args), fragment)

    for faults, fragment in (({"failStart": "no accelerator"}, "failed to start: no accelerator"),
                             ({"invalid": "needs a bigger boat"}, "needs a bigger boat"),
                             ({"startErrors": "not a list"}, "must be a list")):
        set_faults(lima_home, "keep", **faults)
        kept = Kept(d)
        failing("start", "keep", fragment=fragment)
        kept.check()
    set_faults(lima_home, "keep")
    good = yaml_path.read_text()
    kept = Kept(d)
    failing("create", "--name", "keep", str(fake_template), fragment="already exists")
    failing("snapshot", "apply", "keep", "--tag", "nope", fragment="not found")
    failing("snapshot", "create", "keep", "--tag", "s1", fragment="already exists")
    failing("snapshot", "delete", "keep", "--tag", "nope", fragment="not found")
    failing("shell", "keep", "true", fragment="is Stopped")
    kept.check()

    yaml_path.write_text(good + "cpus: [\n")  # broken by hand
    for args in (["start", "keep"], ["delete", "keep"], ["shell", "keep", "true"], ["snapshot", "list", "keep"]):
        failing(*args)
    lima("stop", "keep", ok=True)
    lima("stop", "-f", "keep", ok=True)
    yaml_path.write_text(good)
    kept.check()

    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")  # the driver is uninstalled
    failing("start", "keep", fragment="unknown vmType 'fake'")
    failing("snapshot", "list", "keep", fragment="unknown vmType 'fake'")
    kept.check()
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "fake")

    lima("start", "keep", ok=True)
    failing("delete", "keep", fragment="is running")
    failing("create", "--name", "keep", str(fake_template), fragment="already exists")
    lima("stop", "-f", "keep", ok=True)
    kept.check()
    assert leftovers() == []


def test_failed_create_leaves_nothing(lima, internal: Path, tmp_path: Path, fake_template: Path,
                                      lima_home: Path) -> None:
    for body, fragment in ((f"vmType: fake\nimages:\n- location: {tmp_path / 'missing.img'}\nmounts: []\n",
                            "missing.img does not exist"),
                           (fake_template.read_text() + "vmOpts:\n  fake:\n    invalid: not today\n",
                            "lima: not today"),
                           (fake_template.read_text() + "vmOpts:\n  fake:\n    dieIn: create\n",
                            "dieIn needs the external fake driver")):
        t = tmp_path / "t.yaml"
        t.write_text(body)
        one_error_line(lima("create", "--name", "half", str(t)), fragment)
        assert not (lima_home / "half").exists()
    assert [p.name for p in lima_home.iterdir() if not p.name.startswith("_")] == []


# -- a full disk -----------------------------------------------------------------------------


@pytest.fixture
def small_home(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """LIMA_HOME on a 2 MiB tmpfs: a disk that really fills up (needs root and mount)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    home = short_tmp / "home"
    home.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(home)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    monkeypatch.setenv("LIMA_HOME", str(home))
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def _fill(fs: Path) -> Path:
    filler = fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_full_disk_during_create(lima, internal: Path, small_home: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.raw"
    big.write_bytes(b"\0" * (3 << 20))  # bigger than the whole file system
    t = tmp_path / "big.yaml"
    t.write_text(f"vmType: fake\nimages:\n- location: {big}\nmounts: []\n")
    one_error_line(lima("create", "--name", "big", str(t)), "No space left on device")
    assert not (small_home / "big").exists()

    filler = _fill(small_home)  # now not even lima.yaml fits
    small = tmp_path / "small.yaml"
    small.write_text(f"vmType: fake\nimages:\n- location: {tmp_path / 'big.raw'}\nmounts: []\n")
    one_error_line(lima("create", "--name", "full", str(small)), "No space left on device")
    assert not (small_home / "full").exists()
    filler.unlink()


def test_full_disk_during_start(lima, internal: Path, small_home: Path, fake_template: Path, leftovers) -> None:
    lima("create", "--name", "st", str(fake_template), ok=True)
    kept = Kept(small_home / "st")
    filler = _fill(small_home)
    one_error_line(lima("start", "st"), "No space left on device")
    kept.check()
    assert quick_status("st")["status"] == "Stopped"
    filler.unlink()
    lima("start", "st", ok=True)
    lima("stop", "-f", "st", ok=True)
    assert leftovers() == []
