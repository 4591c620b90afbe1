"""The driver conformance suite: what every driver, internal or external, must do.

Use it by subclassing :class:`ConformanceSuite` in a test module and providing
a ``driver_factory`` fixture that returns a :class:`DriverUnderTest`. The
suite checks the contract written in :mod:`lima_core.hookspecs`:

- ``info`` answers before ``configure`` and names the driver;
- ``configure`` keeps fields it does not know, in the instance and its config;
- ``create`` is idempotent;
- boot-script keys have the form ``boot.<OS>/<SCRIPT>`` (or a bare name);
- every hook either answers or raises a typed :class:`LimaError`;
- a capability is either implemented or reports UnsupportedOperation; suspend
  and resume come together;
- read-only calls (``info``, ``forward_guest_agent``) are safe concurrently;
- ``inspect_status`` answers on an instance this driver object never configured;
- when the driver can boot here, the start stream says "started", carries
  errors, and ends after ``stop``; before ``start`` the instance is prepared
  in ``lima create``'s order (configure, validate, create, the image fetched,
  create_disk, cidata);
- given a template with a guest, the driver boots it to READY through the code
  ``lima start`` runs (SSH answers and the guest wrote boot-done), and stops
  it gracefully. Without a template this check is skipped, and the kit's
  summary says the driver was not shown to conform.

Driver authors need not subclass anything: ``pytest --lima-driver NAME`` runs
this suite against any installed driver (see :mod:`lima_core.testing.plugin`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .. import guestfields, hookspecs
from ..errors import ConfigError, HostUnsupported, LimaError, StartFailed, UnsupportedOperation
from ..host import DriverHost
from ..limatype import Info, Instance, LimaYAML, host_arch

#: Errors by which a driver declines to boot an instance (a crash is a plain DriverError).
REFUSALS: tuple[type[LimaError], ...] = (ConfigError, HostUnsupported, StartFailed, UnsupportedOperation)

BOOT_SCRIPT_KEY = re.compile(r"^(boot\.[A-Za-z0-9]+/)?[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclasses.dataclass
class DriverUnderTest:
    """How the suite reaches the driver."""

    name: str
    #: "in-process" or "external"
    mode: str
    #: instance directory -> a fresh DriverHost for it
    make: Callable[[Path], DriverHost]
    #: lima.yaml for a bootable instance, or None if the driver cannot boot here
    boot_config: dict[str, Any] | None = None
    #: prepares the instance dir before start, after create_disk (e.g. writes cidata), if the driver needs it
    prepare_boot: Callable[[DriverHost, Instance], None] | None = None
    #: True when boot_config is only a guess: a typed refusal to boot skips the start check
    boot_optional: bool = False
    #: a template (locator) with a guest the driver boots to READY; None skips that check
    template: str | None = None
    #: environment variables (None: unset) under which `lima` picks this driver, e.g. LIMA_EXTERNAL_DRIVERS
    lima_env: dict[str, str | None] = dataclasses.field(default_factory=dict)
    #: the external executable `lima` must pick under lima_env; None: the internal driver
    executable: str | None = None
    #: seconds the boot to READY may take
    boot_timeout: float = 240.0
    #: puts the images into the instance dir after create, before create_disk (lima create's download)
    fetch_images: Callable[[DriverHost, Instance], None] | None = None


def host_for(driver: object, name: str | None = None) -> DriverHost:
    """*driver* (an object of your driver class) as lima calls it, for your own tests.

    The result has a method per hook, called with keyword arguments
    (``host.configure(instance=inst)`` or ``host.configure(inst)``,
    ``host.start()``, ``host.create_snapshot(tag="t")``); a hook the driver
    does not implement gives the contract's fallback, as in lima; a crash
    becomes a ``DriverError`` naming the hook. ``host.implements(hook)`` says
    whether the driver has it.
    """
    return DriverHost(driver, name)


def new_instance(directory: Path, vm_type: str, config: dict[str, Any] | None = None) -> Instance:
    """An Instance as the host would hand it to ``configure``."""
    directory.mkdir(parents=True, exist_ok=True)
    cfg = {"vmType": vm_type, "arch": host_arch(), "cpus": 1, "memory": "512MiB", "disk": "1GiB",
           "images": [{"location": "/nonexistent/image", "arch": host_arch()}], **(config or {})}
    name = directory.name
    return Instance(name=name, hostname=f"lima-{name}", dir=str(directory), vm_type=vm_type, arch=host_arch(),
                    config=_with_guest_defaults(LimaYAML.from_json(cfg)))


def _with_guest_defaults(cfg: LimaYAML) -> LimaYAML:
    """The guest-side defaults (provisions, probes, ...) filled, as cidata needs them; the driver-facing
    fields are left as given, for ``configure`` to fill."""
    guestfields.fill_defaults(cfg)
    return cfg


@contextlib.contextmanager
def short_instances_dir(prefix: str) -> Iterator[Path]:
    """A short temporary directory for instance directories (a driver's unix sockets live there,
    104 bytes at most). External driver servers left in its instance directories are stopped
    before it is removed: their pid files go with it, and nothing else would find them."""
    from ..external import supervisor

    with tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp" if os.path.isdir("/tmp") else None) as d:
        yield Path(d)
        for sub in Path(d).iterdir():
            if sub.is_dir():
                supervisor.stop_servers(sub, force=True)


def capability_report(host: DriverHost) -> dict[str, str]:
    """capability -> "implemented" | "partial" | "not implemented", from the hooks the driver has."""
    by_cap: dict[str, list[bool]] = {}
    for hook in hookspecs.HOOKS:
        by_cap.setdefault(hookspecs.CAPABILITIES[hook], []).append(host.implements(hook))
    return {cap: "implemented" if all(v) else "partial" if any(v) else "not implemented"
            for cap, v in by_cap.items()}


def capability_hooks(host: DriverHost) -> dict[str, tuple[list[str], list[str]]]:
    """capability -> (hooks implemented, hooks missing), in hookspec order."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for hook in hookspecs.HOOKS:
        have, missing = out.setdefault(hookspecs.CAPABILITIES[hook], ([], []))
        (have if host.implements(hook) else missing).append(hook)
    return out


def free_port() -> int:
    """A free TCP port on 127.0.0.1, as the host agent picks one for SSH."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call_outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or (error class name, message): comparable across in-process and external."""
    try:
        return "ok", fn()
    except LimaError as exc:
        return type(exc).__name__, exc.message


class ConformanceSuite:
    """Subclass with a ``driver_factory`` fixture returning a DriverUnderTest."""

    @pytest.fixture
    def dut(self, driver_factory: DriverUnderTest) -> DriverUnderTest:
        return driver_factory

    @pytest.fixture
    def configured(self, dut: DriverUnderTest, tmp_path: Path) -> tuple[DriverHost, Instance]:
        inst = new_instance(tmp_path / "inst", dut.name)
        host = dut.make(Path(inst.dir))
        host.configure(inst)
        return host, inst

    def test_info_before_configure(self, dut: DriverUnderTest, tmp_path: Path) -> None:
        host = dut.make(tmp_path / "fresh")
        info = host.info()
        assert isinstance(info, Info), f"info returned {type(info).__name__}, not Info"
        assert info.name == dut.name, f"info names the driver {info.name!r}, not {dut.name!r}"
        assert info.vsock_port >= 0, f"info's vsock_port is {info.vsock_port}"

    def test_configure_keeps_unknown_fields(self, dut: DriverUnderTest, tmp_path: Path) -> None:
        inst = new_instance(tmp_path / "inst", dut.name, {"futureField": {"nested": [1, 2]}})
        inst.extra["futureInstanceKey"] = "kept"
        host = dut.make(Path(inst.dir))
        out = host.configure(inst)
        assert out.extra.get("futureInstanceKey") == "kept", \
            "configure dropped an instance field it does not know (futureInstanceKey); leave such fields alone"
        assert out.config is not None, "configure dropped the instance's config"
        assert out.config.extra.get("futureField") == {"nested": [1, 2]}, \
            "configure dropped a lima.yaml field it does not know (futureField); leave such fields alone"
        assert out.config.vm_type == dut.name, f"configure left vmType {out.config.vm_type!r}, not {dut.name!r}"

    def test_create_is_idempotent(self, configured: tuple[DriverHost, Instance]) -> None:
        host, inst = configured
        host.create()
        before = sorted(p.name for p in Path(inst.dir).iterdir())
        host.create()
        after = sorted(p.name for p in Path(inst.dir).iterdir())
        assert after == before, (f"a second create changed the instance directory (before: {before}, after: "
                                 f"{after}); create must do nothing on an existing instance")

    def test_boot_script_keys(self, configured: tuple[DriverHost, Instance]) -> None:
        host, _ = configured
        scripts = host.boot_scripts()
        assert isinstance(scripts, dict), f"boot_scripts returned {type(scripts).__name__}, not a dict"
        for key, content in scripts.items():
            assert BOOT_SCRIPT_KEY.match(key), f"bad boot script key {key!r}"
            assert isinstance(content, bytes), f"boot script {key!r} is {type(content).__name__}, not bytes"

    def test_every_hook_answers_or_raises_typed(self, configured: tuple[DriverHost, Instance]) -> None:
        host, inst = configured
        calls: dict[str, Callable[[], Any]] = {
            "info": host.info, "validate": host.validate, "create": host.create,
            "inspect_status": lambda: host.inspect_status(inst.copy()),
            "boot_scripts": host.boot_scripts, "display_connection": host.display_connection,
            "change_display_password": lambda: host.change_display_password(password="abcd1234"),
            "list_snapshots": host.list_snapshots, "forward_guest_agent": host.forward_guest_agent,
            "ssh_address": host.ssh_address, "check_host": host.check_host,
            "capture_screenshot": lambda: host.capture_screenshot(format="png"),
        }
        for hook, fn in calls.items():
            try:
                fn()
            except LimaError:
                pass
            except Exception as exc:  # noqa: BLE001 - the point of the check
                pytest.fail(f"{hook} raised {type(exc).__name__} (not a LimaError): {exc}")

    def test_unimplemented_capabilities_say_so(self, configured: tuple[DriverHost, Instance]) -> None:
        host, _ = configured
        for hook in hookspecs.HOOKS:
            if host.implements(hook) or hookspecs.FALLBACKS[hook].policy != "unsupported":
                continue
            kwargs = {p: "x" for p in _params(hook)}
            with pytest.raises(UnsupportedOperation, match="does not support"):
                host.call(hook, **kwargs)

    def test_suspend_comes_with_resume(self, configured: tuple[DriverHost, Instance]) -> None:
        """One capability, two hooks: both or neither. With no VM running and nothing saved, suspend refuses with
        a typed error and resume with StartFailed."""
        host, _ = configured
        have = [h for h in ("suspend", "resume") if host.implements(h)]
        assert have in ([], ["suspend", "resume"]), f"the suspend capability needs both hooks; the driver has {have}"
        if have:
            with pytest.raises(LimaError):
                host.suspend()
            with pytest.raises(StartFailed):
                host.resume()

    def test_read_only_calls_are_safe_concurrently(self, configured: tuple[DriverHost, Instance]) -> None:
        host, _ = configured
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            infos = list(pool.map(lambda _: host.info(), range(32)))
            forwards = list(pool.map(lambda _: host.forward_guest_agent(), range(32)))
        assert all(i == infos[0] for i in infos), "concurrent info calls gave different answers"
        assert all(f == forwards[0] for f in forwards), "concurrent forward_guest_agent calls gave different answers"

    def test_inspect_status_without_configure(self, dut: DriverUnderTest, tmp_path: Path) -> None:
        inst = new_instance(tmp_path / "listed", dut.name)
        host = dut.make(Path(inst.dir))
        try:
            status = host.inspect_status(inst)
        except LimaError as exc:
            pytest.fail(f"inspect_status on an instance the driver never configured raised "
                        f"{type(exc).__name__}: {exc.message}")
        assert isinstance(status, str), f"inspect_status returned {type(status).__name__}, not a str"

    def test_start_stream(self, dut: DriverUnderTest, tmp_path: Path) -> None:
        if dut.boot_config is None:
            pytest.skip(f"driver {dut.name} cannot boot on this host")
        inst = new_instance(tmp_path / "boot", dut.name, dut.boot_config)
        inst.ssh_local_port = free_port()  # as the host agent does before configure
        host = dut.make(Path(inst.dir))
        try:
            # lima create's order: configure, validate, create, fetch the images, create_disk;
            # then the host agent's: cidata (info, boot_scripts), start.
            host.configure(inst)
            host.validate()
            host.create()
            if dut.fetch_images:
                dut.fetch_images(host, inst)
            host.create_disk()
            if dut.prepare_boot:
                dut.prepare_boot(host, inst)
            handle = host.start()
        except REFUSALS as exc:
            if not dut.boot_optional:
                raise
            pytest.skip(f"driver {dut.name} did not boot this instance ({type(exc).__name__}: {exc.message}); "
                        "give it a template it can boot (--lima-driver-template)")
        try:
            early = handle.next(timeout=0.5)
            assert early is None or not early.ended, f"the VM ended right after start: {early}"
        finally:
            host.stop()
        deadline = time.monotonic() + 30
        while (event := handle.next(timeout=1)) is None or not event.ended:
            assert time.monotonic() < deadline, "the start stream did not end after stop"

    def test_boots_to_ready(self, dut: DriverUnderTest) -> None:
        from .boot import NO_TEMPLATE, boot_to_ready

        if dut.template is None:
            pytest.skip(NO_TEMPLATE)
        boot_to_ready(dut.name, dut.template, dut.lima_env, dut.boot_timeout, dut.executable)


def _params(hook: str) -> list[str]:
    import inspect

    return list(inspect.signature(getattr(hookspecs, hook)).parameters)
