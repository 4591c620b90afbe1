"""lima-core's conformance kit against microvm, in-process and external; the start check boots the test guest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lima_core.testing.conformance import ConformanceSuite, DriverUnderTest, short_instances_dir
from lima_core.testing.target import driver_under_test, resolve
from microvm_helpers import guest_dir, write_template


@pytest.fixture(params=["in-process", "external"])
def driver_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DriverUnderTest]:
    target = resolve("microvm", external=request.param == "external", scratch=tmp_path_factory.mktemp("bin"))
    guest = guest_dir()
    template = write_template(tmp_path_factory.mktemp("tmpl") / "t.yaml", guest, shutdownTimeout=20) if guest else None
    try:
        yield driver_under_test(target, template=str(template) if template else None)
    finally:
        target.cleanup()


class TestMicrovmConformance(ConformanceSuite):
    @pytest.fixture
    def tmp_path(self) -> Iterator[Path]:
        with short_instances_dir("lmc-") as d:  # short: qmp.sock lives there
            yield d

    @pytest.mark.vm
    def test_start_stream(self, dut: DriverUnderTest, tmp_path: Path) -> None:
        if guest_dir() is None:
            pytest.skip("the test guest is not built: run scripts/build-test-guest")
        super().test_start_stream(dut, tmp_path)
