"""lima-driver-vz: Lima's vz VM driver (macOS Virtualization.framework) for lima-core.

``driver.VZDriver`` is registered under the ``lima.drivers`` entry point ``vz``;
``lima-driver-vz`` (``main``) serves it as a Lima external driver. Importing
this package works on any OS; only starting a VM needs macOS 13 or later,
pyobjc (see :mod:`lima_driver_vz.framework`) and a process signed with the
virtualization entitlement (see :mod:`lima_driver_vz.entitlement`):
``lima-driver-vz --entitle`` makes one.
"""

from __future__ import annotations

import sys

from ._version import __version__

DRIVER = "lima_driver_vz.driver:VZDriver"
ENTITLE_FLAG = "--entitle"


def run(argv: list[str]) -> int:
    """``lima-driver-vz [--entitle | <external driver flags>]``."""
    from . import entitlement

    if argv[1:2] == [ENTITLE_FLAG]:
        return entitlement.entitle_command(argv)
    entitlement.reexec(argv)  # returns unless an entitled copy of this interpreter takes over (macOS)
    from lima_core.external import serve

    return serve(DRIVER, argv)


def main() -> None:
    raise SystemExit(run(sys.argv))


__all__ = ["__version__", "main", "run"]
