"""pytest plugin shipped with lima-core (entry point ``pytest11: lima_core``).

``pytest --lima-driver NAME [--lima-driver-external] [--lima-driver-template FILE]``
checks an installed driver against the driver contract, from any directory:
the option makes :mod:`lima_core.testing.suite` the file pytest collects (test
files or directories named on the command line are collected too; the current
directory, or ``testpaths``, is not), and the terminal summary ends with a
report per capability and per check. Without ``--lima-driver`` this plugin does
nothing; it is loaded in every pytest run of every project that has lima-core
installed, so this module imports nothing but pytest.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import pytest

SUITE_MODULE = "lima_core.testing.suite"
# The checks' asserts say what they compared, in the kit's runs and in suites that subclass it.
pytest.register_assert_rewrite("lima_core.testing.conformance", "lima_core.testing.boot")


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
    #: the driver's Python source (package directory or module file), to point at its lines
    source_root: str | None = None


REPORT_KEY = pytest.StashKey[Report]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lima", "lima-core driver conformance")
    group.addoption("--lima-driver", metavar="NAME", default=None,
                    help="check the installed lima driver NAME against the driver contract")
    group.addoption("--lima-driver-external", action="store_true", default=False,
                    help="run the driver as an external process (lima-driver-NAME) instead of in-process")
    group.addoption("--lima-driver-template", metavar="FILE", default=None,
                    help="a lima.yaml template with a guest the driver can boot: the start check boots it, and "
                         "the boot check boots it to READY (without it the boot is not checked)")
    group.addoption("--lima-driver-boot-timeout", metavar="SECONDS", type=float, default=240.0,
                    help="how long the boot to READY may take (default: 240)")


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
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # No paths on the command line: pytest would collect the current directory (or testpaths),
        # which is not the kit's to run (a driver project's own tests, a parent folder's).
        config.args[:] = [suite]
    elif suite not in config.args:
        config.args.append(suite)
    config.pluginmanager.register(_Recorder(config), "lima-driver-conformance")


class _Recorder:
    """Registered only with --lima-driver: records the checks, prints the report."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        """A failed check's detail: the error's message and the driver's own source line."""
        report = yield
        if report.failed and call.excinfo is not None and "::TestLimaDriver::" in report.nodeid:
            detail = failure_detail(call.excinfo.value, self.config.stash[REPORT_KEY].source_root,
                                    _stderr_logs(item))
            report.user_properties.append((DETAIL_KEY, detail))
        return report

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
            detail = dict(report.user_properties).get(DETAIL_KEY) or \
                (report.longreprtext.strip().splitlines() or [""])[-1]
        checks[check] = (report.outcome, detail)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in summary_lines(self.config.stash[REPORT_KEY], self.config.getoption("lima_driver")):
            terminalreporter.write_line(line)


DETAIL_KEY = "lima_driver_detail"
#: a failure's detail in the summary is cut to this many characters
DETAIL_WIDTH = 300


def _stderr_logs(item: pytest.Item) -> list[Any]:
    """An external driver's stderr logs in the check's instance directories (its tracebacks are there)."""
    from pathlib import Path

    root = getattr(item, "funcargs", {}).get("tmp_path")
    if not isinstance(root, Path) or not root.is_dir():
        return []
    return sorted(root.glob("*/driver.stderr.log"))


def failure_detail(exc: BaseException, source_root: str | None, stderr_logs: list[Any] = ()) -> str:
    """One line: what failed (the driver's message) and where in the driver's source it was raised.

    The place is the innermost frame of the driver's own source (*source_root*) in the
    exception or what it was raised from; for an external driver, the last such frame in
    its stderr log. Frames of lima-core, pytest and pluggy are never named.
    """
    message = getattr(exc, "message", None) if type(exc).__module__.startswith("lima_core") else None
    if message is not None:
        text = f"{type(exc).__name__}: {message}"
    else:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else type(exc).__name__
        if type(exc).__name__ not in ("Failed", "AssertionError") and not text.startswith(type(exc).__name__):
            text = f"{type(exc).__name__}: {text}"
    where = _driver_frame(exc, source_root) or _logged_frame(stderr_logs, source_root)
    if where:
        text += f" (at {where})"
    return text if len(text) <= DETAIL_WIDTH else text[:DETAIL_WIDTH - 3] + "..."


def _ours(filename: str) -> bool:
    """A file of lima-core (outside lima_core.testing's drivers), pytest, pluggy, grpc or the standard library."""
    import os
    import sys
    import sysconfig

    path = os.path.abspath(filename)
    skip = [sysconfig.get_paths()["stdlib"]]
    for module in ("lima_core", "pytest", "_pytest", "pluggy", "grpc"):
        mod = sys.modules.get(module)
        if mod is not None and getattr(mod, "__file__", None):
            skip.append(os.path.dirname(mod.__file__))
    return path.startswith("<") or any(path.startswith(d + os.sep) for d in skip)


def _is_driver_file(filename: str, source_root: str | None) -> bool:
    import os

    if source_root is None:
        return not _ours(filename)
    path = os.path.abspath(filename)
    return path == source_root or path.startswith(source_root.rstrip(os.sep) + os.sep)


def _short(filename: str, source_root: str | None) -> str:
    import os

    if source_root is not None:
        base = os.path.dirname(source_root.rstrip(os.sep))
        return os.path.relpath(filename, base)
    return filename


def _driver_frame(exc: BaseException, source_root: str | None) -> str:
    """"file:line in function" of the innermost driver frame in *exc* and its causes, or ""."""
    import traceback

    seen: set[int] = set()
    current: BaseException | None = exc
    found = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame in traceback.extract_tb(current.__traceback__):
            if _is_driver_file(frame.filename, source_root):
                found = f"{_short(frame.filename, source_root)}:{frame.lineno} in {frame.name}"
        if found:
            return found
        current = current.__cause__ or current.__context__
    return ""


def _logged_frame(logs: list[Any], source_root: str | None) -> str:
    """The innermost driver frame of the last traceback in the driver processes' stderr logs, or ""."""
    import re

    pattern = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)')
    found = ""
    for log in logs:
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            m = pattern.match(line)
            if m and _is_driver_file(m.group(1), source_root):
                found = f"{_short(m.group(1), source_root)}:{m.group(2)} in {m.group(3)}, in the driver process"
    return found


def verdict(report: Report, name: str) -> str:
    """The last line: conforms only when every check of the suite ran and passed."""
    from .conformance import ConformanceSuite

    failed = [c for c, (o, _) in report.checks.items() if o == "failed"]
    skipped = [c for c, (o, _) in report.checks.items() if o == "skipped"]
    deselected = [c for c in vars(ConformanceSuite) if c.startswith("test_") and c not in report.checks]
    if failed:
        return (f"{name} does not conform to the driver contract: {len(failed)} check(s) failed "
                f"({', '.join(map(_label, failed))})")
    if skipped or deselected:
        why = [f"{', '.join(map(_label, skipped))}; see above why"] if skipped else []
        why += [f"not selected: {', '.join(map(_label, deselected))}"] if deselected else []
        return (f"{name} is not shown to conform to the driver contract: {len(skipped) + len(deselected)} "
                f"check(s) not run ({'; '.join(why)})")
    return f"{name} conforms to the driver contract (all {len(report.checks)} checks passed)"


def _label(check: str) -> str:
    return check.removeprefix("test_").replace("_", " ")


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
            shown = "not checked" if outcome == "skipped" else outcome
            detail = detail.removeprefix("not checked: ") if outcome == "skipped" else detail
            lines.append(f"{_label(check):<42}{shown}" + (f": {detail}" if detail else ""))
        lines.append("")
        lines.append(verdict(report, name))
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
