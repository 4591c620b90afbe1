"""``lima-guestagent`` in cidata: the :mod:`lima_core.guestagent` package as one zip application.

Python runs a zip file whose root holds ``__main__.py``; the package goes in
as ``lima_guestagent/``, so the guest needs nothing of lima_core. The archive
is the same bytes for the same sources (fixed timestamps, sorted entries), so
the boot script's comparison with the installed copy restarts the agent only
when it changed.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from .. import guestagent

NAME = "lima-guestagent"
PACKAGE = "lima_guestagent"
SHEBANG = b"#!/usr/bin/env python3\n"
MAIN = f"import sys\n\nfrom {PACKAGE}.__main__ import main\n\nsys.exit(main())\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)


@functools.lru_cache(maxsize=1)
def zipapp() -> bytes:
    """The zip application's bytes (shebang, then the archive)."""
    import zipfile  # here: the host agent starts without it, and builds this once

    source = Path(guestagent.__file__).parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, _EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)

        add("__main__.py", MAIN.encode())
        for path in sorted(source.glob("*.py")):
            add(f"{PACKAGE}/{path.name}", path.read_bytes())
    return SHEBANG + buf.getvalue()
