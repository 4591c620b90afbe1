"""``python -m lima_driver_vz``: the external driver, as the entitled interpreter copy runs it.

``lima-driver-vz`` re-executes itself this way (see :mod:`.entitlement`); the
arguments are the ones lima gave ``lima-driver-vz``.
"""

from __future__ import annotations

import sys

from . import run

if __name__ == "__main__":
    raise SystemExit(run(["lima-driver-vz", *sys.argv[1:]]))
