"""Make an executable ``lima-driver-<name>`` out of any installed driver class.

Used by ``lima drivers build-external`` (the analog of Lima's
``make additional-drivers``) and by tests. The executable is a two-line
Python script bound to this interpreter that calls :func:`main_for`.
"""

from __future__ import annotations

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


def write_executable(dest_dir: Path, name: str, target: str, python: str | None = None) -> Path:
    """Write ``dest_dir/lima-driver-<name>`` serving ``module:Class`` *target*; mode 0755."""
    if not name or "/" in name or name.startswith("."):
        raise LimaError(f"invalid driver name {name!r}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / filenames.driver_executable(name, windows=False)  # a script, never an .exe
    atomicfile.write(path, _SCRIPT.format(python=python or sys.executable, name=name, target=target), mode=0o755)
    return path
