"""pytest plugin shipped with lima-core (entry point ``pytest11: lima_core``).

``pytest --lima-driver NAME [--lima-driver-external]`` runs the conformance
suite against an installed driver; see :mod:`lima_core.testing.conformance`.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lima", "lima-core driver conformance")
    group.addoption("--lima-driver", metavar="NAME", default=None,
                    help="check the installed lima driver NAME against the driver contract")
    group.addoption("--lima-driver-external", action="store_true", default=False,
                    help="run the driver as an external process (lima-driver-NAME) instead of in-process")
