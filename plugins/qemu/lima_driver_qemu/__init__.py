"""lima-driver-qemu: Lima's qemu driver for lima-core.

Installed, it registers as ``lima.drivers: qemu`` (an internal driver) and
provides the ``lima-driver-qemu`` executable (the same driver as an external
one, via :func:`lima_core.external.serve`).
"""

from __future__ import annotations

from ._version import __version__
from .driver import QemuDriver

__all__ = ["QemuDriver", "__version__", "main"]


def main() -> None:
    """The ``lima-driver-qemu`` console script.

    grpc is imported here, not with the package: loading the driver in-process
    (``lima start``, the host agent) does not need it.
    """
    from lima_core.external import main_for

    main_for(QemuDriver)()
