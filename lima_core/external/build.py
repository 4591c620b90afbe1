"""Make an executable ``lima-driver-<name>`` out of any installed driver class.

Used by ``lima drivers build-external`` (the analog of Lima's
``make additional-drivers``) and by tests. The executable is a two-line
Python script bound to this interpreter that calls :func:`main_for`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .. import atomicfile, filenames
from ..errors import LimaError

_SCRIPT = """#!{python}
# lima-driver-{name}: serves the {name!r} driver ({target}) as a Lima external driver.
# Written by lima-core; regenerate with `lima drivers build-external {name}`.
from lima_core.external import main_for
main_for({target!r})()
"""


_TARGET_LINE = re.compile(r"^main_for\((['\"])(?P<target>[^'\"]+)\1\)\(\)$", re.M)


def served_target(text: str) -> str | None:
    """The ``module:Class`` an executable written here serves, read back from its text (None if not ours)."""
    if "# Written by lima-core" not in text:
        return None
    m = _TARGET_LINE.search(text)
    return m.group("target") if m else None


def write_executable(dest_dir: Path, name: str, target: str, python: str | None = None) -> Path:
    """Write ``dest_dir/lima-driver-<name>`` serving ``module:Class`` *target*; mode 0755."""
    if not name or "/" in name or name.startswith("."):
        raise LimaError(f"invalid driver name {name!r}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / filenames.driver_executable(name, windows=False)  # a script, never an .exe
    atomicfile.write(path, _SCRIPT.format(python=python or sys.executable, name=name, target=target), mode=0o755)
    return path
