"""The test module ``pytest --lima-driver NAME`` adds to the collection.

It is collected only when the option is given (the plugin appends this file
to pytest's arguments); the driver comes from :mod:`lima_core.testing.target`.
Node ids read ``.../lima_core/testing/suite.py::TestLimaDriver::test_...``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conformance import ConformanceSuite, DriverUnderTest, short_instances_dir
from .plugin import REPORT_KEY, Report


@pytest.fixture(scope="session")
def lima_driver_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The driver under test; LIMA_HOME points at a scratch directory meanwhile."""
    from .conformance import capability_hooks, capability_report
    from .target import resolve

    config = request.config
    name = config.getoption("lima_driver")
    if not name:
        pytest.skip("no --lima-driver NAME given")
    home = tmp_path_factory.mktemp("lima-home")
    saved = os.environ.get("LIMA_HOME")
    os.environ["LIMA_HOME"] = str(home)  # ssh keys and the like never land in the user's ~/.lima
    target = resolve(name, bool(config.getoption("lima_driver_external")), tmp_path_factory.mktemp("driver-bin"))
    report: Report = config.stash.setdefault(REPORT_KEY, Report())
    report.driver, report.location = name, target.location
    report.mode = "external" if target.external else "in-process"
    report.source_root = target.source_root
    try:
        host = target.make(tmp_path_factory.mktemp("probe"))
        try:
            info = host.info()
            report.features = {k: v for k, v in info.features.to_json().items() if v}
            report.capabilities = capability_report(host)
            report.hooks = capability_hooks(host)
        finally:
            host.close()
        yield target
    finally:
        target.cleanup()
        if saved is None:
            os.environ.pop("LIMA_HOME", None)
        else:
            os.environ["LIMA_HOME"] = saved


class TestLimaDriver(ConformanceSuite):
    """lima-core's driver contract, checked against the driver named by --lima-driver."""

    @pytest.fixture
    def driver_factory(self, request: pytest.FixtureRequest, lima_driver_target: object) -> DriverUnderTest:
        from .target import driver_under_test

        template = request.config.getoption("lima_driver_template")
        timeout = request.config.getoption("lima_driver_boot_timeout")
        return driver_under_test(lima_driver_target, template, timeout)  # type: ignore[arg-type]

    @pytest.fixture
    def tmp_path(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
        """Short directories: a driver's unix sockets live in the instance directory (104 bytes at most)."""
        with short_instances_dir("lk-") as d:
            yield d
