"""The driver host: how lima-core calls exactly one driver for one instance.

Each :class:`DriverHost` owns a private pluggy ``PluginManager`` holding the
hookspecs and a single driver object, so a ``firstresult`` hook has exactly one
implementation to call and never falls through to another plugin. A hook the
driver does not implement is answered by the spec's :class:`Fallback` (a
neutral default, or :class:`UnsupportedOperation`), decided before the call,
so a hook that legitimately returns None is never mistaken for a missing one.

``LIMA_TRACE_DRIVERS=1`` traces every hook call to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pluggy

from . import hookspecs
from .errors import DriverError, DriverLoadError, LimaError, UnsupportedOperation
from .limatype import Info, Instance
from .starthandle import StartHandle

TRACE_ENV = "LIMA_TRACE_DRIVERS"


class DriverHost:
    """One driver object, registered alone on its own plugin manager.

    Hook methods are reached as attributes: ``host.start()``,
    ``host.create_snapshot(tag="t")``. Arguments are keyword-only, as pluggy
    requires.
    """

    def __init__(self, driver: object, name: str | None = None, *, location: str = "internal") -> None:
        self.driver = driver
        self.location = location
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        label = name or type(driver).__name__
        try:
            self._pm.register(driver, name=label)
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise DriverLoadError(f"driver {label!r} does not fit the driver contract: {_pluggy_reason(exc)}") from exc
        self.implemented = frozenset(h for h in hookspecs.HOOKS if getattr(self._pm.hook, h).get_hookimpls())
        missing = [h for h in hookspecs.HOOKS if hookspecs.FALLBACKS[h].policy == "required" and h not in self.implemented]
        if missing:
            raise DriverLoadError(f"driver {label!r} does not implement the required hook(s) {', '.join(missing)}")
        self.name = name or self.info().name or label
        if os.environ.get(TRACE_ENV, "") not in ("", "0"):
            self._pm.add_hookcall_monitoring(*_tracer(self.name))

    def __repr__(self) -> str:
        return f"<DriverHost {self.name} ({self.location})>"

    def close(self) -> None:
        """Release what the driver object holds open (an external driver's channel)."""
        closer = getattr(self.driver, "close", None)
        if callable(closer):
            closer()

    def interrupt(self) -> None:
        """Cancel the driver's calls in progress, from another thread: each raises a DriverError in its
        caller. Only an external driver's calls can be: an in-process hook runs until it returns."""
        interrupter = getattr(self.driver, "interrupt", None)
        if callable(interrupter):
            interrupter()

    # -- calling hooks --------------------------------------------------------------------

    def implements(self, hook: str) -> bool:
        return hook in self.implemented

    def call(self, hook: str, **kwargs: Any) -> Any:
        """Call *hook* on the driver, or apply its fallback when it is not implemented."""
        if hook not in self.implemented:
            fallback = hookspecs.FALLBACKS[hook]
            if fallback.policy == "unsupported":
                raise UnsupportedOperation(f"driver {self.name!r} does not support {fallback.capability}")
            assert fallback.value is not None
            return fallback.value(self)
        try:
            return getattr(self._pm.hook, hook)(**kwargs)
        except LimaError:
            raise
        except Exception as exc:  # a driver bug or an unexpected failure: keep its message
            raise DriverError(f"driver {self.name!r} failed in {hook}: {exc or type(exc).__name__}") from exc

    def __getattr__(self, hook: str) -> Any:
        if hook in hookspecs.FALLBACKS:
            return lambda **kwargs: self.call(hook, **kwargs)
        raise AttributeError(hook)

    # -- hooks whose results the host checks or completes ---------------------------------

    def info(self) -> Info:
        result = self.call("info")
        if not isinstance(result, Info):
            raise DriverError(f"driver {self.driver!r} returned {type(result).__name__} from info, not Info")
        return result

    def configure(self, instance: Instance) -> Instance:
        """Configure and return the configured instance (the same object, mutated)."""
        result = self.call("configure", instance=instance)
        if isinstance(result, Instance) and result is not instance:
            # A driver may hand back a replacement (external drivers always do).
            instance.replace_with(result)
        return instance

    def start(self) -> StartHandle:
        return self._handle("start")

    def resume(self) -> StartHandle:
        return self._handle("resume")

    def _handle(self, hook: str) -> StartHandle:
        result = self.call(hook)
        if not isinstance(result, StartHandle):
            raise DriverError(f"driver {self.name!r} returned {type(result).__name__} from {hook}, not a StartHandle")
        return result

    def suspend(self) -> int:
        """The saved state's size in bytes (0 when the driver does not say)."""
        result = self.call("suspend")
        return result if isinstance(result, int) and not isinstance(result, bool) and result > 0 else 0

    def boot_scripts(self) -> dict[str, bytes]:
        scripts = self.call("boot_scripts") or {}
        return {str(k): v.encode() if isinstance(v, str) else bytes(v) for k, v in scripts.items()}

    def inspect_status(self, instance: Instance) -> str:
        return self.call("inspect_status", instance=instance) or ""

    def default_forward_guest_agent(self) -> bool:
        info = self.info()
        return info.vsock_port == 0 and info.virtio_port == ""


def _pluggy_reason(exc: pluggy.PluginValidationError) -> str:
    text = str(exc)
    if "unknown hook" in text:
        hooks = text.split("unknown hook", 1)[1].strip().split()[0].strip("'\"")
        return f"it has a hookimpl {hooks!r} that is not a driver hook (misspelled?); the hooks are: {', '.join(hookspecs.HOOKS)}"
    return text


def _tracer(name: str) -> tuple[Any, Any]:
    starts: dict[int, float] = {}

    def before(hook_name: str, _impls: Any, kwargs: dict[str, Any]) -> None:
        starts[id(kwargs)] = time.perf_counter()
        args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
        print(f"lima-trace: {name}.{hook_name}({args})", file=sys.stderr, flush=True)

    def after(outcome: Any, hook_name: str, _impls: Any, kwargs: dict[str, Any]) -> None:
        elapsed = (time.perf_counter() - starts.pop(id(kwargs), time.perf_counter())) * 1000
        exc = outcome.exception
        result = f"raised {type(exc).__name__}: {exc}" if exc else f"-> {_short(outcome.get_result())}"
        print(f"lima-trace: {name}.{hook_name} {result} ({elapsed:.1f} ms)", file=sys.stderr, flush=True)

    return before, after


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
