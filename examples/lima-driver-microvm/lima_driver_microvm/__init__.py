"""lima-driver-microvm: boots Lima instances with QEMU's ``microvm`` machine.

An example third-party driver for lima-core, written with the public SDK only
(``lima_core``, ``lima_core.external`` and the documented helper modules).
Installed with pip it is an internal driver (entry point ``lima.drivers:
microvm``) and an external one (console script ``lima-driver-microvm``).
"""

from __future__ import annotations

from lima_core.external import main_for

from ._version import __version__

__all__ = ["__version__", "main"]

#: The ``lima-driver-microvm`` console script.
main = main_for("lima_driver_microvm.driver:MicrovmDriver")
