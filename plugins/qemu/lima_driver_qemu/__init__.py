"""lima-driver-qemu: Lima's qemu driver for lima-core.

Installed, it registers :class:`lima_driver_qemu.driver.QemuDriver` as
``lima.drivers: qemu`` (an internal driver) and provides the
``lima-driver-qemu`` executable, the same driver as an external one.

The package itself imports neither the driver nor grpc: the executable
imports the driver once it has prepared the process (see
:func:`lima_core.external.main_for`), and loading the driver in-process
(``lima start``, the host agent) never imports grpc.
"""

from __future__ import annotations

from lima_core.external import main_for

from ._version import __version__

__all__ = ["__version__", "main"]

#: The ``lima-driver-qemu`` console script.
main = main_for("lima_driver_qemu.driver:QemuDriver")
