"""`python -m benchmarks --quick` keeps working: it runs, and its JSON has the documented shape.

No timing is asserted here: figures from a shared CI machine mean nothing.
docs/benchmarks.md holds the measured table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROW_KEYS = {"id", "what", "unit", "value", "floor", "floor_value", "ratio", "target", "target_abs", "met", "samples",
            "floor_samples", "load", "extra"}


def run_quick(only: str, out: Path, timeout: float) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only", only, "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("| id | measurement |"), proc.stdout  # the table
    return json.loads(out.read_text())


def check_shape(report: dict, ids: list[str]) -> None:
    assert report["quick"] is True
    assert {"cpu", "cores", "kernel", "python", "qemu", "packages"} <= set(report["machine"])
    assert len(report["load_before"]) == 3
    assert set(report["benchmarks"]) == set(ids)
    for entry in report["benchmarks"].values():
        assert entry["status"] == "ok" or entry["status"].startswith("skipped:"), entry
    for row in report["results"]:
        assert set(row) == ROW_KEYS, row
        assert row["id"] in {*ids, "RSS"}
        assert row["samples"] or row["id"] == "RSS"
        assert row["met"] in (True, False, None)


def test_quick_runner_without_vms(tmp_path: Path) -> None:
    ids = ["B2", "B3", "B4", "B5"]
    report = run_quick(",".join(ids), tmp_path / "quick.json", timeout=280)
    check_shape(report, ids)
    rows = {(r["id"], r["what"]): r for r in report["results"]}
    assert {r["id"] for r in report["results"]} == {*ids, "RSS"}
    b5 = [r for r in report["results"] if r["id"] == "B5"]
    assert [r["extra"]["instances"] for r in b5] == [0, 10, 50]
    assert all("processes_spawned" in r["extra"] for r in b5)
    b4 = [r for (bid, _), r in rows.items() if bid == "B4"]
    assert all(r["extra"]["forbidden_imports"] == [] for r in b4)


@pytest.mark.vm
def test_quick_runner_boots(tmp_path: Path) -> None:
    """B1 and B6 boot the test guest (skipped inside the runner when it is not built)."""
    report = run_quick("B1,B6", tmp_path / "quick-vm.json", timeout=290)
    check_shape(report, ["B1", "B6"])
    if report["benchmarks"]["B1"]["status"] == "ok":
        b1 = next(r for r in report["results"] if r["id"] == "B1")
        assert b1["floor_value"] and b1["extra"]["qemu_argv"][0].endswith("qemu-system-x86_64")


@pytest.mark.vm
def test_quick_runner_suspends(tmp_path: Path) -> None:
    """B10 boots, suspends and resumes the test guest (skipped inside the runner when it is not built)."""
    report = run_quick("B10", tmp_path / "quick-b10.json", timeout=290)
    check_shape(report, ["B10"])
    if report["benchmarks"]["B10"]["status"] == "ok":
        resume, suspend, size = report["results"]
        assert resume["floor_value"] and resume["target"] == 0.25
        assert suspend["unit"] == "s" and size["unit"] == "MiB" and size["value"] > 1
def test_b11_reads_the_guest_scripts_timestamps() -> None:
    """B11 boots the cloud-init guest three times (too long for the suite: see docs/benchmarks.md for
    its figures); its arithmetic is checked here."""
    from benchmarks import BENCHMARKS, b11_mounts

    assert BENCHMARKS["B11"] is b11_mounts
    write, read = b11_mounts.throughput("100.0 102.0 103.0 103.5\n", 64)
    assert (write, read) == (32.0, 128.0)
