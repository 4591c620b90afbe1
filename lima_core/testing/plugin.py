"""pytest plugin shipped with lima-core (entry point ``pytest11: lima_core``).

``pytest --lima-driver NAME [--lima-driver-external] [--lima-driver-template FILE]``
checks an installed driver against the driver contract, from any directory
(an empty one will do): the option adds :mod:`lima_core.testing.suite` to the
files pytest collects, and the terminal summary ends with a report per
capability. Without ``--lima-driver`` this plugin does nothing; it is loaded
in every pytest run of every project that has lima-core installed, so this
module imports nothing but pytest.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import pytest

SUITE_MODULE = "lima_core.testing.suite"


@dataclasses.dataclass
class Report:
    """What the terminal summary says, filled while the suite runs."""

    driver: str = ""
    mode: str = ""
    location: str = ""
    features: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: capability -> "implemented" | "partial" | "not implemented"
    capabilities: dict[str, str] = dataclasses.field(default_factory=dict)
    #: capability -> (hooks implemented, hooks missing)
    hooks: dict[str, tuple[list[str], list[str]]] = dataclasses.field(default_factory=dict)
    #: check name -> (outcome, detail)
    checks: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)


REPORT_KEY = pytest.StashKey[Report]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lima", "lima-core driver conformance")
    group.addoption("--lima-driver", metavar="NAME", default=None,
                    help="check the installed lima driver NAME against the driver contract")
    group.addoption("--lima-driver-external", action="store_true", default=False,
                    help="run the driver as an external process (lima-driver-NAME) instead of in-process")
    group.addoption("--lima-driver-template", metavar="FILE", default=None,
                    help="a lima.yaml template the driver can boot, for the start-stream check")


def _suite_file() -> str:
    spec = importlib.util.find_spec(SUITE_MODULE)
    assert spec is not None and spec.origin is not None
    return spec.origin


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("lima_driver", None):
        return
    config.stash[REPORT_KEY] = Report()
    suite = _suite_file()
    if suite not in config.args:
        config.args.append(suite)
    config.pluginmanager.register(_Recorder(config), "lima-driver-conformance")


class _Recorder:
    """Registered only with --lima-driver: records the checks, prints the report."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Remember each suite check's outcome: its first failure or skip, else its call."""
        if "::TestLimaDriver::" not in report.nodeid:
            return
        check = report.nodeid.rsplit("::", 1)[1]
        checks = self.config.stash[REPORT_KEY].checks
        if report.when != "call" and report.outcome == "passed":
            return
        if check in checks and checks[check][0] != "passed":
            return
        detail = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            detail = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed:
            detail = (report.longreprtext.strip().splitlines() or [""])[-1][:160]
        checks[check] = (report.outcome, detail)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in summary_lines(self.config.stash[REPORT_KEY], self.config.getoption("lima_driver")):
            terminalreporter.write_line(line)


def summary_lines(report: Report, name: str) -> list[str]:
    """The report as text: the driver, its capabilities, the contract checks."""
    title = f"lima driver conformance: {name}" + (f" ({report.mode})" if report.mode else "")
    lines = [f"{'=' * 10} {title} {'=' * 10}"]
    if not report.location:
        lines.append("the driver could not be loaded; see the errors above")
        return lines
    lines.append(f"driver      {report.location}")
    if report.features:
        lines.append("features    " + ", ".join(f"{k}={v}" for k, v in report.features.items()))
    lines.append("")
    lines.append(f"{'capability':<13}{'status':<17}hooks")
    for cap in report.capabilities:
        status, hooks = _capability_line(*report.hooks.get(cap, ([], [])))
        lines.append(f"{cap:<13}{status:<17}{hooks}")
    if report.checks:
        lines.append("")
        lines.append(f"{'check':<42}result")
        for check, (outcome, detail) in report.checks.items():
            label = check.removeprefix("test_").replace("_", " ")
            lines.append(f"{label:<42}{outcome}" + (f": {detail}" if detail else ""))
        failed = sum(1 for o, _ in report.checks.values() if o == "failed")
        lines.append("")
        lines.append(f"{name} {'does not conform' if failed else 'conforms'} to the driver contract"
                     + (f" ({failed} check(s) failed)" if failed else ""))
    return lines


def _capability_line(have: list[str], missing: list[str]) -> tuple[str, str]:
    """(status, hooks) for one capability; a missing hook shows what the host does instead."""
    from ..hookspecs import FALLBACKS

    unsupported = [h for h in missing if FALLBACKS[h].policy == "unsupported"]
    defaulted = [h for h in missing if FALLBACKS[h].policy != "unsupported"]
    if not missing:
        status = "implemented"
    elif have:
        status = "partial"
    else:
        status = "unsupported" if unsupported else "host default"
    parts = [" ".join(have)] if have else []
    if defaulted:
        parts.append("host default for: " + " ".join(defaulted))
    if unsupported:
        parts.append("UnsupportedOperation from: " + " ".join(unsupported))
    return status, "; ".join(parts)
