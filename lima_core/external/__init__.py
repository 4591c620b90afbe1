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

import gc
from collections.abc import Callable
from typing import Any

__all__ = ["serve", "main_for"]


def main_for(driver: Any) -> Callable[[], None]:
    """A console-script entry point that serves *driver* (what :func:`serve` takes).

    Give the driver as ``"module:Class"`` and keep the package's
    ``__init__`` from importing it: the script then imports grpc and the
    driver after start-up has begun, with the cyclic garbage collector
    paused (see ``_pause_collection``), and the driver starts answering
    sooner.
    """

    def main() -> None:
        _pause_collection()
        from .server import serve

        raise SystemExit(serve(driver))

    return main


# -- start-up without the cyclic collector -------------------------------------------------
# A driver process spends its start-up importing modules and building objects that live as
# long as it does (classes, descriptors, the gRPC service tables). The cyclic collector runs
# every 700 allocations and finds nothing to free there; paused, a driver is ready about
# 20 ms sooner (benchmark B3). It is turned back on before the driver does any work.

_paused = False


def _pause_collection() -> None:
    """Pause the cyclic garbage collector until :func:`_resume_collection` (no-op when it is off)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def _resume_collection() -> None:
    """Turn the collector back on if :func:`_pause_collection` turned it off."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()


def __getattr__(name: str) -> Any:
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module 'lima_core.external' has no attribute {name!r}")
