"""External drivers: separate ``lima-driver-<name>`` processes speaking Lima's gRPC protocol.

Driver authors need one call::

    from lima_core.external import serve
    raise SystemExit(serve(MyDriver))

The host side lives in :mod:`.supervisor` (processes) and :mod:`.client` (the
shim). grpc is imported only when one of them, or ``serve``, is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["serve", "main_for"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module 'lima_core.external' has no attribute {name!r}")
