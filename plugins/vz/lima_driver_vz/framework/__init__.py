"""The only package that touches Virtualization.framework (through pyobjc).

Everything here reaches the framework through a :class:`Bindings` object,
never by importing pyobjc modules directly, so tests can swap in a fake:

- ``VZDriver(framework=bindings)`` uses *bindings* (tests in-process);
- otherwise ``$LIMA_VZ_FRAMEWORK`` names a ``module:function`` returning
  Bindings (external driver processes in tests, e.g.
  ``lima_driver_vz.testing.fakevz:bindings``);
- otherwise the real pyobjc modules are imported: ``Virtualization``,
  ``Foundation``, ``libdispatch``, ``Security`` (the entitlement check), and
  for the GUI ``AppKit`` and ``Quartz``.
  Off macOS, or without pyobjc, loading raises HostUnsupported.

Submodules: :mod:`.configuration` (a VMSpec into a VZVirtualMachineConfiguration),
:mod:`.machine` (a running VM on its dispatch queue), :mod:`.gui` (window and
screenshots).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from lima_core.errors import DriverError, HostUnsupported

FRAMEWORK_ENV = "LIMA_VZ_FRAMEWORK"
REQUIRED = ("Virtualization", "Foundation", "libdispatch", "Security")


class Bindings:
    """pyobjc modules by name (``bindings.Virtualization``), imported on first use."""

    def __init__(self, modules: dict[str, Any] | None = None,
                 importer: Callable[[str], Any] = importlib.import_module, label: str = "pyobjc") -> None:
        self._modules = dict(modules or {})
        self._importer = importer
        self.label = label

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._modules:
            try:
                self._modules[name] = self._importer(name)
            except ImportError as exc:
                raise HostUnsupported(f"vz needs the pyobjc module {name} ({exc}); "
                                      "run `pip install lima-driver-vz` on macOS 13 or later") from exc
        return self._modules[name]

    def __repr__(self) -> str:
        return f"<vz framework bindings: {self.label}>"


def from_spec(spec: str) -> Bindings:
    """Bindings from ``module:function`` (the function returns Bindings)."""
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr or "bindings")
    except (ImportError, AttributeError) as exc:
        raise DriverError(f"{FRAMEWORK_ENV}={spec!r} does not name a function returning vz bindings: {exc}") from exc
    bindings = factory()
    if not isinstance(bindings, Bindings):
        raise DriverError(f"{FRAMEWORK_ENV}={spec!r} returned {type(bindings).__name__}, not Bindings")
    return bindings


def load() -> Bindings:
    """The bindings this process uses: ``$LIMA_VZ_FRAMEWORK`` or the real pyobjc modules.

    :raises HostUnsupported: pyobjc's Virtualization cannot be imported here.
    """
    spec = os.environ.get(FRAMEWORK_ENV, "")
    if spec:
        return from_spec(spec)
    bindings = Bindings()
    for name in REQUIRED:
        getattr(bindings, name)
    return bindings
