"""lima-guestagent as cidata delivers it: one zip application, the same bytes for the same sources, that
runs with nothing of lima-core around and on the oldest Python a cloud-init guest may have (3.6)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lima_core import guestagent
from lima_core.cidata import guestagent as delivery

SOURCES = sorted(Path(guestagent.__file__).parent.glob("*.py"))
#: standard-library names added after Python 3.6, which the agent must not use
NEWER = ("dataclasses", "asyncio.run(", "get_running_loop", "asyncio.create_task", "from __future__",
         "removeprefix", "removesuffix", "functools.cache(", "math.prod", "is_reading(", "shlex.join")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_the_agent_runs_on_python_3_6(path: Path) -> None:
    text = path.read_text()
    tree = ast.parse(text, feature_version=(3, 6))  # no walrus, no positional-only parameters...
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.returns is None and not any(a.annotation for a in node.args.args), \
                f"{path.name}:{node.lineno}: annotations would be evaluated on 3.6 (no postponed evaluation)"
    for name in NEWER:
        assert name not in text, f"{path.name} uses {name!r}, which Python 3.6 lacks"
    imports = {n.names[0].name if isinstance(n, ast.Import) else n.module
               for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and not getattr(n, "level", 0)}
    assert not {m for m in imports if m and m.split(".")[0] == "lima_core"}, "the agent must not need lima_core"
    for module in imports:
        if module:
            assert module.split(".")[0] in sys.stdlib_module_names, f"{path.name} imports {module}, not stdlib"


def test_the_zipapp_is_reproducible_and_self_contained(tmp_path: Path) -> None:
    data = delivery.zipapp()
    delivery.zipapp.cache_clear()
    assert delivery.zipapp() == data
    assert data.startswith(b"#!/usr/bin/env python3\n")
    app = tmp_path / "lima-guestagent"
    app.write_bytes(data)
    # -I: no site-packages, no PYTHONPATH, no current directory: only what the file holds
    out = subprocess.run([sys.executable, "-I", str(app), "version"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"lima-guestagent \S+ \(protocol 1\)\n", out.stdout)
    out = subprocess.run([sys.executable, "-I", str(app), "daemon", "--tick", "0"], capture_output=True, text=True)
    assert out.returncode == 2 and "--tick and --idle-tick must be more than 0" in out.stderr
