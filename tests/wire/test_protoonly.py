"""A driver written from proto/driver.proto alone (no lima_core), found on LIMA_DRIVERS_PATH and
driven by the lima CLI through create, start, shell, list (--inspect-status), stop and delete.

It stands for a driver written in Go or Rust; see protoonly_driver.py beside this file.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from lima_core.cli import app
from lima_core.testing import fakessh

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER = HERE / "protoonly_driver.py"


@pytest.fixture
def driver_dir(proto_modules: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LIMA_DRIVERS_PATH directory holding the executable lima-driver-protoonly."""
    d = tmp_path_factory.mktemp("protoonly-bin")
    exe = d / "lima-driver-protoonly"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={proto_modules} exec {sys.executable} {DRIVER} \"$@\"\n")
    exe.chmod(0o755)
    return d


@pytest.fixture
def lima(driver_dir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(driver_dir))
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")  # no internal drivers: only what LIMA_DRIVERS_PATH has
    ssh_bin = tmp_path_factory.mktemp("fake-ssh")
    fakessh.install(ssh_bin)  # the VM has no SSH server; this ssh runs commands on the host
    monkeypatch.setenv("PATH", f"{ssh_bin}{os.pathsep}{os.environ['PATH']}")
    runner = CliRunner()

    def run(*args: str, ok: bool | None = True):
        result = runner.invoke(app, list(args))
        if ok is not None:
            assert (result.exit_code == 0) == ok, (args, result.stdout, result.stderr, result.exception)
        return result

    return run


def test_the_driver_imports_no_lima_core() -> None:
    tree = ast.parse(DRIVER.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "lima_core" not in imported
    assert {"grpc", "driver_pb2", "driver_pb2_grpc"} <= imported


def test_lima_drives_a_proto_only_driver(lima, driver_dir: Path, lima_home: Path, tmp_path: Path) -> None:
    rows = json.loads(lima("drivers", "list", "--format", "json").stdout)
    assert [(r["name"], r["kind"], r["source"]) for r in rows] == [("protoonly", "external", "LIMA_DRIVERS_PATH")]
    assert rows[0]["available"] == "yes"  # no extension service: check_host is neutral

    image = tmp_path / "image.raw"
    image.write_bytes(b"proto-only disk")
    template = tmp_path / "po.yaml"
    # plain: the driver's "VM" runs no guest agent (it would need lima-core's fake guest), so no port forwarding
    template.write_text(f"vmType: protoonly\nimages:\n- location: {image}\ncpus: 1\nmemory: 256MiB\n"
                        "disk: 1GiB\nmounts: []\nplain: true\n")
    r = lima("create", "--name", "po", str(template))
    assert "with the protoonly driver" in r.stderr
    inst = lima_home / "po"
    assert (inst / "protoonly-identifier").exists() and (inst / "disk").read_bytes() == b"proto-only disk"
    assert not list(inst.glob("*.drv.pid")), "create leaves no driver process behind"

    r = lima("start", "po")
    assert "external VM driver 'protoonly'" in r.stderr and "READY" in r.stderr
    row = json.loads(lima("list", "--format", "json", "po").stdout)
    assert row["status"] == "Running" and row["driverPID"]
    assert (inst / "protoonly-inspect.log").read_text().strip(), "lima list ran --inspect-status"
    assert lima("shell", "po", "cat", "/run/lima-boot-done").stdout.strip().startswith("iid-")

    r = lima("snapshot", "create", "po", "--tag", "t", ok=False)
    assert "does not support create snapshot" in r.stderr  # the Go-style "unimplemented"
    # lima-core's suspend is beyond Lima's interface: a plain Lima driver simply lacks it.
    r = lima("suspend", "po", ok=False)
    assert r.stderr.strip() == "lima: driver 'protoonly' does not support suspend"
    assert json.loads(lima("list", "--format", "json", "po").stdout)["status"] == "Running"

    lima("stop", "po")
    assert json.loads(lima("list", "--format", "json", "po").stdout)["status"] == "Stopped"
    lima("delete", "po")
    assert not inst.exists()
    _no_leftovers(lima_home)


def test_validate_errors_reach_the_user(lima, lima_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "image.raw"
    image.write_bytes(b"x")
    template = tmp_path / "bad.yaml"
    template.write_text(f"vmType: protoonly\nvmOpts:\n  protoonly:\n    invalid: needs a bigger boat\n"
                        f"images:\n- location: {image}\nmounts: []\n")
    r = lima("create", "--name", "bad", str(template), ok=False)
    assert r.stderr.strip().endswith("lima: needs a bigger boat")  # the driver's message, no gRPC prefix
    assert not (lima_home / "bad").exists()
    _no_leftovers(lima_home)


def _no_leftovers(lima_home: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            if "protoonly_driver.py" in cmd and str(lima_home) in cmd:
                found.append(cmd)
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert found == []
