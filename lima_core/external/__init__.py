"""External drivers: separate ``lima-driver-<name>`` processes speaking Lima's gRPC protocol.

Driver authors need one call::

    from lima_core.external import serve
    raise SystemExit(serve(MyDriver))

The host side (supervisor, client shim) lives in the submodules.
"""

from __future__ import annotations

from .server import main_for, serve

__all__ = ["serve", "main_for"]
