"""lima-driver-wsl2: Lima's wsl2 VM driver (Windows Subsystem for Linux 2) for lima-core.

``driver.WSL2Driver`` is registered under the ``lima.drivers`` entry point ``wsl2``;
``lima-driver-wsl2`` (``main``) serves it as a Lima external driver. Importing
this package works on any OS; the driver runs ``wsl.exe``, found on PATH or
named by ``$LIMA_WSL_EXE`` (see :mod:`lima_driver_wsl2.wsl`).
"""

from __future__ import annotations

from lima_core.external import main_for

from ._version import __version__

main = main_for("lima_driver_wsl2.driver:WSL2Driver")

__all__ = ["__version__", "main"]
