"""External drivers: separate ``lima-driver-<name>`` processes speaking Lima's gRPC protocol.

Driver authors need one call::

    from lima_core.external import serve
    raise SystemExit(serve(MyDriver))

or, for a console script (``lima-driver-mydrv = "lima_driver_mydrv:main"``)::

    main = main_for("lima_driver_mydrv.driver:MyDriver")

The host side lives in :mod:`.supervisor` (processes) and :mod:`.client` (the
shim). grpc is imported only when one of them, or ``serve``, is used: a
driver package that defines ``main`` with :func:`main_for` can be loaded
in-process without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["serve", "main_for"]


def main_for(driver: Any) -> Callable[[], None]:
    """A console-script entry point that serves *driver* (what :func:`serve` takes).

    Defining it imports neither grpc nor, when *driver* is given as
    ``"module:Class"``, the driver: a package that sets ``main`` this way
    stays cheap to import, and loads in-process without grpc.
    """

    def main() -> None:
        from .server import serve

        raise SystemExit(serve(driver))

    return main


def __getattr__(name: str) -> Any:
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module 'lima_core.external' has no attribute {name!r}")
