"""The external-driver shim is generated from the hookspecs and called through pluggy like any driver.

It relies on how pluggy reads an implementation's parameter names (following ``__wrapped__``); these
tests fail if the installed pluggy reads them another way.
"""

from __future__ import annotations

import inspect
from typing import Any

import pluggy
import pytest

from lima_core import hookspecs
from lima_core.external.client import ExternalDriver
from lima_core.host import DriverHost
from lima_core.limatype import Info, Instance


class _RecordingConnection:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, hook: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((hook, kwargs))
        return Info(name="rec") if hook == "info" else None

    def close(self) -> None:
        pass


def _spec_params(hook: str) -> list[str]:
    return list(inspect.signature(getattr(hookspecs, hook)).parameters)


@pytest.mark.parametrize("hook", [h for h in hookspecs.HOOKS if h not in ("start", "inspect_status")])
def test_pluggy_sees_the_specs_parameters(hook: str) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(ExternalDriver(_RecordingConnection(), "/x", frozenset(hookspecs.HOOKS)))
    pm.check_pending()
    (impl,) = getattr(pm.hook, hook).get_hookimpls()
    assert list(impl.argnames) == _spec_params(hook)


def test_calls_through_the_host_carry_every_argument_by_name() -> None:
    conn = _RecordingConnection()
    host = DriverHost(ExternalDriver(conn, "/x", frozenset(hookspecs.HOOKS)), "rec")  # type: ignore[arg-type]
    inst = Instance(name="i")
    host.configure(inst)
    host.create_snapshot(tag="t1")
    host.change_display_password(password="pw")
    host.capture_screenshot(format="png")
    host.stop()
    assert conn.calls[-5:] == [("configure", {"instance": inst}), ("create_snapshot", {"tag": "t1"}),
                               ("change_display_password", {"password": "pw"}),
                               ("capture_screenshot", {"format": "png"}), ("stop", {})]


def test_only_the_served_hooks_are_implemented() -> None:
    host = DriverHost(ExternalDriver(_RecordingConnection(), "/x", frozenset({"info", "start", "stop"})), "rec")  # type: ignore[arg-type]
    assert host.implemented == {"info", "start", "stop"}
