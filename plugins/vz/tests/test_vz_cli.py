"""What the CLI shows of vz on a host that cannot run it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lima_driver_vz.hostinfo import HostFacts
from typer.testing import CliRunner

from lima_core.cli import app

pytestmark = pytest.mark.skipif(HostFacts.current().is_macos, reason="checks a host that cannot run vz")


def test_drivers_list_says_installed_but_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "vz")
    result = CliRunner().invoke(app, ["drivers", "list", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    (row,) = [r for r in json.loads(result.stdout) if r["name"] == "vz"]
    assert row["kind"] == "internal" and row["distribution"].startswith("lima-driver-vz ")
    assert row["available"] == f"no: vz needs macOS 13 or later; this host runs {HostFacts.current().describe()}"


def test_create_is_refused_in_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "vz")
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 512)
    template = tmp_path / "t.yaml"
    template.write_text(f"images:\n- location: {image}\nmounts: []\n")
    result = CliRunner().invoke(app, ["create", "--vm-type=vz", "--name", "mac", str(template)])
    assert result.exit_code == 1
    assert "vz needs macOS 13 or later; this host runs" in result.stderr
    assert not (Path(os.environ["LIMA_HOME"]) / "mac").exists()
