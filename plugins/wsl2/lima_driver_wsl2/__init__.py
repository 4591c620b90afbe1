"""lima-driver-wsl2: Lima's wsl2 VM driver (Windows Subsystem for Linux 2) for lima-core.

``WSL2Driver`` is registered under the ``lima.drivers`` entry point ``wsl2``;
``lima-driver-wsl2`` (``main``) serves it as a Lima external driver. Importing
this package works on any OS; the driver runs ``wsl.exe``, found on PATH or
named by ``$LIMA_WSL_EXE`` (see :mod:`lima_driver_wsl2.wsl`).
"""

from __future__ import annotations

from lima_core.external import main_for

from ._version import __version__
from .driver import WSL2Driver

main = main_for(WSL2Driver)

__all__ = ["WSL2Driver", "__version__", "main"]
