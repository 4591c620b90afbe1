"""lima-core: Lima's pluggable VM-driver system, in Python.

Driver authors use::

    from lima_core import hookimpl, Info, DriverFeatures, StartHandle, errors
    from lima_core.external import serve   # to make an executable

plus the helper modules docs/authors.md lists (``lima_core.bootscripts``,
``lima_core.filenames``, ...), and nothing else from lima-core's internals. The names are loaded on first
use, so ``lima --version`` and ``lima list`` do not pay for pluggy or grpc.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import LIMA_COMPAT_VERSION, __version__

_LAZY = {
    "hookimpl": "hookspecs",
    "DriverFeatures": "limatype",
    "Info": "limatype",
    "Instance": "limatype",
    "LimaYAML": "limatype",
    "StartEvent": "starthandle",
    "StartHandle": "starthandle",
    "serve": "external",
}

__all__ = ["LIMA_COMPAT_VERSION", "__version__", "errors", *_LAZY]


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module(".errors", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lima_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
