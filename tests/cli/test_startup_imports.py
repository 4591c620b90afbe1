"""What `lima --version` and `lima list` import: no grpc, no driver, no pydantic (benchmark B4's paths).

Each command runs in a fresh interpreter, as users run it; the test reads
``sys.modules`` at exit. Timings are measured by ``python -m benchmarks``, never here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_PROBE = """
import atexit, os, sys
def _report():
    names = sorted(m for m in sys.modules if m.split(".")[0] in PREFIXES or m in PREFIXES)
    os.write(2, ("\\nIMPORTED " + " ".join(names) + "\\n").encode())
atexit.register(_report)
sys.argv = ["lima", *ARGS]
from lima_core.cli import main
main()
"""
NEVER = ("grpc", "google", "pydantic", "lima_driver_qemu", "lima_driver_vz", "lima_driver_wsl2", "pluggy")


def imported(args: list[str], home: Path, prefixes: tuple[str, ...]) -> set[str]:
    code = _PROBE.replace("PREFIXES", repr(set(prefixes))).replace("ARGS", repr(args))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "LIMA_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("IMPORTED"))
    return set(line.split()[1:])


@pytest.mark.parametrize("args", [["--version"], ["list"], ["list", "--format", "json"], ["list", "--help"]])
def test_no_grpc_driver_or_pydantic(args: list[str], lima_home: Path) -> None:
    assert imported(args, lima_home, NEVER) == set()


def test_list_without_instances_skips_the_store(lima_home: Path) -> None:
    """No instance: nothing to parse or check, so no yaml and no psutil either."""
    assert imported(["list"], lima_home, ("yaml", "psutil", "lima_core.store")) == set()


def test_no_command_help_imports_grpc_a_driver_or_pydantic(lima_home: Path) -> None:
    """B4 measures `--help` of every command; none may pay for grpc, a driver or pydantic."""
    from lima_core.cli import app
    from lima_core.cli._reference import command_paths

    for words in command_paths(app):
        assert imported([*words, "--help"], lima_home, NEVER) == set(), words
