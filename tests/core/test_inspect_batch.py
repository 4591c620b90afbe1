"""`lima list` asks each external driver once: ``--inspect-status-batch`` and ``store.inspect_all``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lima_core import store, yamlfile
from lima_core.external import status
from lima_core.limatype import STATUS_BROKEN, STATUS_STOPPED
from lima_core.protocol import payload
from lima_core.testing.fakedriver import FakeDriver

FAKE_YAML = {"vmType": "fake", "arch": "x86_64", "cpus": 1, "memory": "1GiB", "disk": "2GiB",
             "images": [{"location": "/nonexistent.img", "arch": "x86_64"}], "mounts": []}
HOOKS = sorted(["configure", "info", "inspect_status", "start", "stop"])

#: A driver as Lima builds them: Go's flag package exits 2 on a flag it does not define.
PLAIN_LIMA_DRIVER = f"""#!{sys.executable}
import sys
if sys.argv[1:] != ["--inspect-status"]:
    print("flag provided but not defined: " + sys.argv[1], file=sys.stderr)
    sys.exit(2)
with open(sys.argv[0] + ".calls", "a") as f:
    f.write("one\\n")
sys.stdout.write(sys.stdin.read())  # the instance back, its status left as sent ("")
"""


def make_instances(lima_home: Path, names: list[str], driver: Path) -> None:
    for name in names:
        d = store.write_new(name, yamlfile.dump(FAKE_YAML))
        store.write_driver_info(d, "fake", str(driver), HOOKS)


def test_batch_protocol_answers_each_line(driver_bin: Path, lima_home: Path) -> None:
    make_instances(lima_home, ["a", "b"], driver_bin / "lima-driver-fake")
    insts = [store.inspect(n, driver_status=False) for n in ("a", "b")]
    batch = payload.encode_inspect(insts[0]) + b'"not base64!"\n' + payload.encode_inspect(insts[1])
    proc = subprocess.run([str(driver_bin / "lima-driver-fake"), "--inspect-status-batch"], input=batch,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert payload.decode_inspect(lines[0]).name == "a"
    assert "malformed --inspect-status payload" in json.loads(lines[1])["error"]
    assert payload.decode_inspect(lines[2]).name == "b"


def test_inspect_all_runs_an_external_driver_once(driver_bin: Path, lima_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(driver_bin))
    names = [f"vm{i}" for i in range(6)]
    make_instances(lima_home, names, driver_bin / "lima-driver-fake")
    runs: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(argv: list[str], *args: object, **kwargs: object) -> subprocess.CompletedProcess:
        runs.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(status.subprocess, "run", counting_run)
    insts = store.inspect_all(names)
    assert [i.name for i in insts] == names
    assert {i.status for i in insts} == {STATUS_STOPPED}  # the fake driver defers to the pid files
    assert runs == [[str(driver_bin / "lima-driver-fake"), "--inspect-status-batch"]]


def test_driver_without_the_batch_flag_is_asked_per_instance(tmp_path: Path, lima_home: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    driver = bin_dir / "lima-driver-fake"
    driver.write_text(PLAIN_LIMA_DRIVER)
    driver.chmod(0o755)
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(bin_dir))
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
    make_instances(lima_home, ["p", "q"], driver)
    insts = store.inspect_all(["p", "q"])
    assert [i.status for i in insts] == [STATUS_STOPPED, STATUS_STOPPED]
    assert (bin_dir / "lima-driver-fake.calls").read_text().splitlines() == ["one", "one"]


def test_a_failing_driver_makes_its_instances_broken(tmp_path: Path, lima_home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    driver = bin_dir / "lima-driver-fake"
    driver.write_text(f"#!{sys.executable}\nimport sys\nprint('boom', file=sys.stderr)\nsys.exit(1)\n")
    driver.chmod(0o755)
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(bin_dir))
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
    make_instances(lima_home, ["x"], driver)
    (inst,) = store.inspect_all(["x"])
    assert inst.status == STATUS_BROKEN
    assert "exited with status 1: boom" in inst.errors[0]


def test_internal_driver_is_loaded_once(lima_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lima_core import registry

    names = ["i1", "i2", "i3"]
    for name in names:
        d = store.write_new(name, yamlfile.dump(FAKE_YAML))
        store.write_driver_info(d, "fake", "internal", HOOKS)
    loads: list[str] = []

    class Entry:
        name, is_external, location = "fake", False, "internal"

    class Reg:
        def get(self, vm_type: str) -> Entry:
            return Entry()

    def load(entry: Entry, instance_dir: object = None) -> object:
        from lima_core.host import DriverHost

        loads.append(entry.name)
        return DriverHost(FakeDriver(), "fake")

    monkeypatch.setattr(registry, "discover", lambda *a, **k: Reg())
    monkeypatch.setattr(registry, "load", load)
    insts = store.inspect_all(names)
    assert [i.status for i in insts] == [STATUS_STOPPED] * 3
    assert loads == ["fake"]
