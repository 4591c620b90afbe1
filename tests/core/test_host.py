"""The driver host: one driver per PluginManager, fallbacks, typed errors, tracing."""

from __future__ import annotations

import pytest

from lima_core import hookimpl, hookspecs
from lima_core.errors import DriverError, DriverLoadError, UnsupportedOperation, ValidationError
from lima_core.host import DriverHost
from lima_core.limatype import Info
from lima_core.starthandle import StartHandle


class Minimal:
    """Only the required hooks."""

    @hookimpl
    def info(self) -> Info:
        return Info(name="mini")

    @hookimpl
    def start(self) -> StartHandle:
        return StartHandle()

    @hookimpl
    def stop(self) -> None:
        return None


def test_every_lima_method_has_a_spec() -> None:
    lima_methods = {
        "validate", "create", "create_disk", "start", "stop", "delete", "inspect_status", "boot_scripts",
        "run_gui", "change_display_password", "display_connection", "create_snapshot", "apply_snapshot",
        "delete_snapshot", "list_snapshots", "forward_guest_agent", "guest_agent_conn", "info", "configure",
        "ssh_address", "additional_setup_for_ssh", "capture_screenshot",
    }
    assert lima_methods <= set(hookspecs.HOOKS)
    for hook in hookspecs.HOOKS:
        spec = getattr(hookspecs, hook)
        assert spec.lima_spec["firstresult"] is True, hook
        assert spec.__doc__ and len(spec.__doc__.strip()) > 40, f"{hook} has no contract docstring"


def test_unsupported_capability_names_driver_and_capability() -> None:
    host = DriverHost(Minimal(), "wsl2")
    with pytest.raises(UnsupportedOperation, match="^driver 'wsl2' does not support snapshots$"):
        host.create_snapshot(tag="t")
    with pytest.raises(UnsupportedOperation, match="does not support a GUI"):
        host.run_gui()


def test_neutral_defaults_when_not_implemented() -> None:
    host = DriverHost(Minimal(), "mini")
    assert host.validate() is None
    assert host.boot_scripts() == {}
    assert host.inspect_status(instance=None) == ""  # type: ignore[arg-type]
    assert host.ssh_address() == "127.0.0.1"
    assert host.forward_guest_agent() is True  # no vsock, no virtio port
    assert host.guest_agent_conn() is None


def test_a_hook_returning_none_does_not_fall_through() -> None:
    """firstresult falls through on None; the host must not then report 'unsupported'."""

    class NoneDisplay(Minimal):
        @hookimpl
        def change_display_password(self, password: str) -> None:
            self.got = password

    driver = NoneDisplay()
    host = DriverHost(driver, "x")
    assert host.change_display_password(password="pw") is None
    assert driver.got == "pw"


def test_misspelled_hookimpl_is_an_error() -> None:
    class Typo(Minimal):
        @hookimpl
        def strat(self) -> None:
            return None

    with pytest.raises(DriverLoadError, match=r"hookimpl 'strat' that is not a driver hook"):
        DriverHost(Typo(), "typo")


def test_wrong_argument_name_is_an_error() -> None:
    class BadArg(Minimal):
        @hookimpl
        def create_snapshot(self, name: str) -> None:
            return None

    with pytest.raises(DriverLoadError, match="does not fit the driver contract"):
        DriverHost(BadArg(), "bad")


def test_missing_required_hook_is_an_error() -> None:
    class NoStop:
        @hookimpl
        def info(self) -> Info:
            return Info(name="nostop")

        @hookimpl
        def start(self) -> StartHandle:
            return StartHandle()

    with pytest.raises(DriverLoadError, match=r"does not implement the required hook\(s\) stop"):
        DriverHost(NoStop(), "nostop")


def test_impl_may_take_fewer_arguments() -> None:
    class Fewer(Minimal):
        @hookimpl
        def inspect_status(self) -> str:
            return "Running"

    assert DriverHost(Fewer(), "f").inspect_status(instance=None) == "Running"  # type: ignore[arg-type]


def test_lima_errors_pass_through_and_others_are_wrapped() -> None:
    class Failing(Minimal):
        @hookimpl
        def validate(self) -> None:
            raise ValidationError("needs macOS 13")

        @hookimpl
        def create(self) -> None:
            raise KeyError("oops")

    host = DriverHost(Failing(), "f")
    with pytest.raises(ValidationError, match="^needs macOS 13$"):
        host.validate()
    with pytest.raises(DriverError, match=r"^driver 'f' failed in create: 'oops'$"):
        host.create()


def test_checked_results() -> None:
    class Liar(Minimal):
        @hookimpl
        def info(self) -> dict:
            return {"name": "liar"}

    with pytest.raises(DriverError, match="from info, not Info"):
        DriverHost(Liar(), "liar").info()


def test_tracing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LIMA_TRACE_DRIVERS", "1")
    host = DriverHost(Minimal(), "mini")
    host.stop()
    err = capsys.readouterr().err
    assert "lima-trace: mini.stop()" in err
    assert "lima-trace: mini.stop -> None" in err


def test_each_host_has_its_own_manager() -> None:
    a, b = Minimal(), Minimal()
    ha, hb = DriverHost(a, "a"), DriverHost(b, "b")
    assert ha._pm is not hb._pm
    assert len(ha._pm.hook.info.get_hookimpls()) == 1


def test_every_hook_call_goes_through_pluggys_hook_caller() -> None:
    """Plain implementations and wrappers alike are called by pluggy: the arguments the implementation
    names, its result, its exception, and a monitor on the manager sees each call."""
    calls: list[str] = []

    class Driver(Minimal):
        @hookimpl
        def configure(self) -> None:  # takes fewer arguments than the spec, as pluggy allows
            calls.append("configure")

        @hookimpl
        def create_snapshot(self, tag: str) -> None:
            calls.append(f"snapshot {tag}")
            raise ValidationError(f"no room for {tag}")

        @hookimpl(wrapper=True)
        def stop(self):  # type: ignore[no-untyped-def]
            calls.append("around stop")
            return (yield)

    host = DriverHost(Driver(), "d")
    seen: list[str] = []
    host._pm.add_hookcall_monitoring(lambda name, _impls, _kwargs: seen.append(name), lambda *_: None)
    assert host.call("configure", instance=object()) is None and host.info().name == "mini"
    with pytest.raises(ValidationError, match="^no room for t1$"):
        host.create_snapshot(tag="t1")
    host.stop()
    assert calls == ["configure", "snapshot t1", "around stop"]
    assert seen == ["configure", "info", "create_snapshot", "stop"]
