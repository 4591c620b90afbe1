"""Fixtures for the fault-injection tests. The CLI fixtures (lima, driver_mode, fake_ssh, fake_template,
instances, leftovers) come from tests/conftest.py; helpers are in faultkit.py.

Faults are injected through the fake driver's ``vmOpts.fake`` options (``dieIn``, ``hangIn``, ...; see
lima_core.testing.fakedriver), by signalling real processes, or by breaking files on disk.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def external(driver_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake driver as an external executable only (what ``dieIn`` needs); returns its directory."""
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(driver_bin))
    return driver_bin


@pytest.fixture
def internal(fake_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake driver as an internal (entry point) driver only, and no other driver."""
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "fake")
    monkeypatch.syspath_prepend(str(fake_site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(fake_site), os.environ.get("PYTHONPATH")])))
    return fake_site


@pytest.fixture
def bystanders() -> Iterator[Any]:
    """Start unrelated processes (killed at the end): ``bystanders(*argv)`` returns a Popen."""
    procs: list[subprocess.Popen] = []

    def start(*argv: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}  # not ours: no LIMA_HOME
        proc = subprocess.Popen(list(argv) or ["sleep", "300"], stdin=subprocess.DEVNULL, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
