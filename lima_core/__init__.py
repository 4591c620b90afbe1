"""lima-core: Lima's pluggable VM-driver system, in Python.

Driver authors use::

    from lima_core import hookimpl, Info, DriverFeatures, StartHandle, errors
    from lima_core.external import serve   # to make an executable

and nothing else from lima-core's internals.
"""

from __future__ import annotations

from typing import Any

from . import errors
from ._version import LIMA_COMPAT_VERSION, __version__
from .hookspecs import hookimpl
from .limatype import DriverFeatures, Info, Instance, LimaYAML
from .starthandle import StartEvent, StartHandle

__all__ = [
    "DriverFeatures",
    "Info",
    "Instance",
    "LIMA_COMPAT_VERSION",
    "LimaYAML",
    "StartEvent",
    "StartHandle",
    "__version__",
    "errors",
    "hookimpl",
    "serve",
]


def __getattr__(name: str) -> Any:
    # serve pulls in grpc; import it only when asked for.
    if name == "serve":
        from .external import serve

        return serve
    raise AttributeError(f"module 'lima_core' has no attribute {name!r}")
