"""Helpers shared by the wsl2 tests (a module with a unique name: every plugin has a conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class FakeWSL:
    """The fake wsl.exe selected for this test, and its state folder."""

    def __init__(self, exe: Path, state: Path) -> None:
        self.exe = exe
        self.state = state

    def behave(self, **behaviour: Any) -> None:
        (self.state / "behaviour.json").write_text(json.dumps(behaviour))

    def distros(self, distros: list[dict[str, Any]], default: str | None = None) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "distros.json").write_text(json.dumps({"default": default, "distros": distros}))

    def listed(self) -> dict[str, Any]:
        return json.loads((self.state / "distros.json").read_text())

    def wait_for_keep_alive(self, distro: str = "lima-inst", instance_dir: str | None = None,
                            timeout: float = 30) -> None:
        """Until the driver's keep-alive (and, given the instance dir, boot) commands have reached the
        distro: a wsl.exe still on its way would start the distro again after a terminate."""
        import time

        deadline = time.monotonic() + timeout
        markers = [self.state / f"keep-alive.{distro}"]
        if instance_dir is not None:
            markers.append(Path(instance_dir) / "fakevm.running")
        while not all(m.exists() for m in markers):
            assert time.monotonic() < deadline, f"the guest commands never ran: {self.calls()}"
            time.sleep(0.05)

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def environments(self) -> list[dict[str, Any]]:
        path = self.state / "env.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
