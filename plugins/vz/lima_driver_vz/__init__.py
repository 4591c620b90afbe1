"""lima-driver-vz: Lima's vz VM driver (macOS Virtualization.framework) for lima-core.

``driver.VZDriver`` is registered under the ``lima.drivers`` entry point ``vz``;
``lima-driver-vz`` (``main``) serves it as a Lima external driver. Importing
this package works on any OS; only starting a VM needs macOS 13 or later and
pyobjc (see :mod:`lima_driver_vz.framework`).
"""

from __future__ import annotations

from lima_core.external import main_for

from ._version import __version__

main = main_for("lima_driver_vz.driver:VZDriver")

__all__ = ["__version__", "main"]
