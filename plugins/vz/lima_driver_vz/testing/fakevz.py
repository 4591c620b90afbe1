"""A fake of the pyobjc modules lima-driver-vz calls, as strict as a real Mac, recording what was configured.

``bindings()`` returns :class:`~lima_driver_vz.framework.Bindings` holding
fake ``Virtualization``, ``Foundation``, ``libdispatch``, ``Security``,
``AppKit`` and ``Quartz`` modules, sharing one :class:`World` (reachable as
``bindings.world``). Select it with ``VZDriver(framework=bindings())``, or in
another process with ``LIMA_VZ_FRAMEWORK=lima_driver_vz.testing.fakevz:bindings``.

The World describes the Mac: its macOS release and CPU architecture, whether
this process is signed with ``com.apple.security.virtualization``, the CPU
and memory limits, Rosetta, and what the guest does. Faithful where it
matters to the driver:

- a class or member the described Mac does not have is missing, as pyobjc
  reports it (AttributeError): the Rosetta classes off arm64, the Rosetta
  caching options before macOS 14,
  ``VZVirtualMachineView.automaticallyReconfiguresDisplay`` before 14,
  nested virtualization before 15 (see ``fakevzdevices.INTRODUCED``);
- objects are made with ``alloc()`` and an ``init...`` selector; properties
  are set with ``setX_`` and read with ``x()``; a misspelt selector raises
  AttributeError; methods with an ``error:`` out-parameter return
  ``(result, error)``; configuration classes refuse what the framework
  refuses (see :mod:`.fakevzdevices`);
- ``Security.SecTaskCopyValueForEntitlement`` answers from ``world.entitled``;
- ``VZVirtualMachine`` must be called on its dispatch queue; it walks
  starting -> running, and running -> stopped after ``requestStopWithError_``
  (or never, with ``world.ignore_stop``). At start it takes every disk image
  for exclusive use (shared for read-only ones) with ``flock``, so a second
  VM, in any process, that attaches a disk in use fails to start, and
  releases them when it stops. (The real framework, by tart's account, stalls
  at start instead; the driver checks before it starts.)
- pause, resume and ``stopWithCompletionHandler_`` (a forced stop) work from
  the states the framework allows them in (``canPause``, ``canResume``,
  ``canStop``); save and restore are macOS 14's: ``saveMachineStateToURL``
  only from paused (the VM stays paused), ``restoreMachineStateFromURL`` only
  on a stopped VM whose configuration is the saved one (else the framework's
  "incompatible" error), leaving it paused; ``validateSaveRestoreSupport``
  refuses with ``world.save_restore_unsupported``. The guest's "memory" is a
  token made at start (``machine.memory``), which the save file carries.
- the Rosetta caching options are checked against the guest side: at start
  the machine records in ``rosetta_cache`` whether the socket Rosetta was
  told about is where the guest's ``rosettad`` listens
  (``world.rosetta_guest_socket``, e.g. taken from the driver's boot script);
- ``socketDevices()[0].connectToPort_completionHandler_`` connects to the
  handlers in ``world.vsock_listeners`` (port 2222 echoes, like a guest
  agent that answers) through a socketpair.

:func:`describe` turns a recorded object into plain data for assertions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
import threading
import time
import types
from collections.abc import Callable
from typing import Any

from ..framework import Bindings
from . import fakevzdevices as devices
from .fakeobjc import (
    NSURL,
    FakeError,
    FakeObject,
    NSApplication,
    NSDate,
    NSMutableData,
    NSWindow,
    _libdispatch,
    _quartz,
)

STOPPED, RUNNING, PAUSED, ERROR, STARTING, PAUSING, RESUMING, STOPPING, SAVING, RESTORING = range(10)
ENTITLEMENT = "com.apple.security.virtualization"


def echo(conn: socket.socket) -> None:
    """A vsock listener that echoes what it receives (a stand-in guest agent)."""
    with contextlib.suppress(OSError):
        while data := conn.recv(65536):
            conn.sendall(data)
    conn.close()


@dataclasses.dataclass
class World:
    """The Mac the fake describes, behaviour of the guest, and what the fake saw."""

    #: the macOS release; members introduced later are missing
    macos: tuple[int, ...] = (15, 5)
    #: "aarch64" or "x86_64"; the Rosetta classes exist on aarch64 only
    arch: str = "aarch64"
    #: this process is signed with com.apple.security.virtualization
    entitled: bool = True
    min_cpus: int = 1
    max_cpus: int = 8
    min_memory: int = 128 << 20
    max_memory: int = 16 << 30
    #: start fails with this message
    start_error: str | None = None
    #: the guest ignores requestStop
    ignore_stop: bool = False
    #: the guest powers off by itself after this many seconds
    stops_after: float | None = None
    #: seconds from requestStop to stopped
    stop_delay: float = 0.05
    #: VZLinuxRosettaDirectoryShare.availability()
    rosetta_availability: int = 2
    #: installing Rosetta fails with this message
    rosetta_install_error: str | None = None
    #: where the guest's rosettad listens ("@name" for an abstract socket); None: no daemon
    rosetta_guest_socket: str | None = None
    nested_supported: bool = True
    #: validateSaveRestoreSupport fails with this message
    save_restore_unsupported: str | None = None
    #: saveMachineStateToURL fails with this message (the VM stays paused)
    save_error: str | None = None
    #: guest vsock port -> handler of the guest end of each connection
    vsock_listeners: dict[int, Callable[[socket.socket], None]] = dataclasses.field(
        default_factory=lambda: {2222: echo})
    #: the NSApplication once sharedApplication() made it
    application: Any = None
    #: every VZVirtualMachine made, in order
    machines: list[Any] = dataclasses.field(default_factory=list)
    #: selectors called on class objects (e.g. "VZLinuxRosettaDirectoryShare.installRosetta...")
    calls: list[str] = dataclasses.field(default_factory=list)


# -- Virtualization: the machine ----------------------------------------------------------------


class VZVirtioSocketConnection(FakeObject):
    def __init__(self, fd: int = -1) -> None:
        super().__init__()
        self._fd = fd

    def fileDescriptor(self) -> int:  # noqa: N802
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class VZVirtioSocketDevice(FakeObject):
    def __init__(self, machine: VZVirtualMachine | None = None) -> None:
        super().__init__()
        self.machine = machine

    def connectToPort_completionHandler_(self, port: int, handler: Callable[[Any, Any], None]) -> None:  # noqa: N802
        listener = self.machine.world.vsock_listeners.get(port) if self.machine is not None else None
        if self.machine is None or self.machine._state != RUNNING or listener is None:
            result: tuple[Any, Any] = (None, FakeError(f"connection to vsock port {port} was refused"))
        else:
            host_end, guest_end = socket.socketpair()
            threading.Thread(target=listener, args=(guest_end,), daemon=True).start()
            result = (VZVirtioSocketConnection(host_end.detach()), None)
        threading.Thread(target=handler, args=result, daemon=True).start()


def _rosetta_cache(options: Any, guest_socket: str | None) -> str:
    """Whether Rosetta in the guest reaches the caching daemon through *options*."""
    if options is None:
        return "not configured"
    wanted = (options.path() if isinstance(options, devices.VZLinuxRosettaUnixSocketCachingOptions)
              else "@" + options.name())
    if guest_socket is None:
        return f"unreachable: no rosettad in the guest (Rosetta asks {wanted})"
    if wanted != guest_socket:
        return f"unreachable: Rosetta asks {wanted}, rosettad listens on {guest_socket}"
    return "connected"


class VZVirtualMachine(FakeObject):
    def __init__(self) -> None:
        super().__init__()
        self._state = STOPPED
        self._config: Any = None
        self._queue: Any = None
        self._locks: list[int] = []
        self.stop_requests = 0
        #: set at start: "connected", "not configured", or "unreachable: <why>"
        self.rosetta_cache: str | None = None
        #: the guest's "memory": made at start, carried by a save file into the machine that restores it
        self.memory: str | None = None
        #: the save file this machine was restored from
        self.restored_from: str | None = None

    def initWithConfiguration_queue_(self, config: Any, queue: Any) -> Any:  # noqa: N802
        self._config, self._queue = config, queue
        self.world.machines.append(self)
        return self._made("initWithConfiguration:queue:", config, queue)

    def _assert_on_queue(self) -> None:
        if self._queue is not None and not self._queue.held():
            raise AssertionError("VZVirtualMachine was called outside its dispatch queue")

    def configuration(self) -> Any:
        return self._config

    def state(self) -> int:
        self._assert_on_queue()
        return self._state

    def canStart(self) -> bool:  # noqa: N802
        self._assert_on_queue()
        return self._state == STOPPED

    def canRequestStop(self) -> bool:  # noqa: N802
        self._assert_on_queue()
        return self._state == RUNNING

    def socketDevices(self) -> list[VZVirtioSocketDevice]:  # noqa: N802
        self._assert_on_queue()
        return [VZVirtioSocketDevice(self)] if self._config.props.get("socketDevices") else []

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        def run() -> None:
            time.sleep(delay)
            fn()

        threading.Thread(target=run, daemon=True).start()

    def _serial(self, text: str) -> None:
        for port in self._config.props.get("serialPorts") or []:
            with open(port.props["attachment"].props["URL"].path(), "a") as f:
                f.write(text)

    def _take_disks(self) -> str | None:
        """flock every disk image (exclusive when writable); the reason when one is in use."""
        for device in self._config.props.get("storageDevices") or []:
            attachment = device.props["attachment"]
            path = attachment.props["URL"].path()
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if attachment.props["readOnly"] else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._release_disks()
                return f"The disk image {path} is in use by another virtual machine."
            self._locks.append(fd)
        return None

    def _release_disks(self) -> None:
        while self._locks:
            os.close(self._locks.pop())

    def _rosetta_options(self) -> Any:
        for device in self._config.props.get("directorySharingDevices") or []:
            share = device.props.get("share")
            if isinstance(share, devices.VZLinuxRosettaDirectoryShare):
                return share.props.get("options")
        return False  # no Rosetta share at all

    def startWithCompletionHandler_(self, handler: Callable[[Any], None]) -> None:  # noqa: N802
        self._assert_on_queue()
        failure = self.world.start_error or self._take_disks()
        if failure:
            self._release_disks()
            self._later(0, lambda: handler(FakeError(failure or "")))
            return
        options = self._rosetta_options()
        if options is not False:
            self.rosetta_cache = _rosetta_cache(options, self.world.rosetta_guest_socket)
        self._state = STARTING

        def running() -> None:
            self._state = RUNNING
            self.memory = os.urandom(8).hex()
            self._serial("fake vz: the guest is running\n")
            handler(None)
            if self.world.stops_after is not None:
                self._later(self.world.stops_after, self._power_off)

        self._later(0.01, running)

    def _power_off(self) -> None:
        self._serial("fake vz: the guest powered off\n")
        self._release_disks()
        self._state = STOPPED

    def requestStopWithError_(self, _e: None) -> tuple[bool, Any]:  # noqa: N802
        self._assert_on_queue()
        if self._state != RUNNING:
            return False, FakeError("the VM is not running")
        self.stop_requests += 1
        if not self.world.ignore_stop:
            self._state = STOPPING
            self._later(self.world.stop_delay, self._power_off)
        return True, None

    # -- pause, resume, forced stop; save and restore (macOS 14) -------------------------------

    def canPause(self) -> bool:  # noqa: N802
        self._assert_on_queue()
        return self._state == RUNNING

    def canResume(self) -> bool:  # noqa: N802
        self._assert_on_queue()
        return self._state == PAUSED

    def canStop(self) -> bool:  # noqa: N802
        self._assert_on_queue()
        return self._state in (RUNNING, PAUSED, ERROR)

    def _transition(self, allowed: bool, why: str, during: int, after: int,
                    handler: Callable[[Any], None]) -> None:
        if not allowed:
            self._later(0, lambda: handler(FakeError(why)))
            return
        self._state = during

        def done() -> None:
            self._state = after
            handler(None)

        self._later(0.01, done)

    def pauseWithCompletionHandler_(self, handler: Callable[[Any], None]) -> None:  # noqa: N802
        self._assert_on_queue()
        self._transition(self._state == RUNNING, "the VM cannot be paused in its current state", PAUSING, PAUSED,
                         handler)

    def resumeWithCompletionHandler_(self, handler: Callable[[Any], None]) -> None:  # noqa: N802
        self._assert_on_queue()
        self._transition(self._state == PAUSED, "the VM cannot be resumed in its current state", RESUMING, RUNNING,
                         handler)

    def stopWithCompletionHandler_(self, handler: Callable[[Any], None]) -> None:  # noqa: N802
        """A forced stop: the guest is not asked."""
        self._assert_on_queue()
        if self._state not in (RUNNING, PAUSED, ERROR):
            self._later(0, lambda: handler(FakeError("the VM cannot be stopped in its current state")))
            return

        def done() -> None:
            self._power_off()
            handler(None)

        self._later(0.01, done)

    def _fingerprint(self) -> str:
        """What a save file must match: the CPUs, the memory, the devices (their classes, in order), and the
        platform's machine identifier. How each object was made is not part of it (a variable store is
        created at the first boot and opened at every later one)."""
        props = self._config.props
        platform = props.get("platform")
        ident = platform.props.get("machineIdentifier") if platform is not None else None
        devices = {key: [type(d).__name__ for d in props.get(key) or []] for key in props if key.endswith("s")}
        return json.dumps({"CPUCount": props.get("CPUCount"), "memorySize": props.get("memorySize"),
                           "devices": devices,
                           "machineIdentifier": ident.dataRepresentation().hex() if ident is not None else None},
                          sort_keys=True)

    def saveMachineStateToURL_completionHandler_(self, url: Any, handler: Callable[[Any], None]) -> None:  # noqa: N802
        self._assert_on_queue()
        ok, error = self._config.validateSaveRestoreSupportWithError_(None)
        failure = (None if self._state == PAUSED else "the VM must be paused to save its state") or \
            (None if ok else error.localizedDescription()) or self.world.save_error
        if failure:
            self._later(0, lambda: handler(FakeError(failure)))
            return
        self._state = SAVING
        text = json.dumps({"configuration": self._fingerprint(), "memory": self.memory})

        def done() -> None:
            try:
                with open(url.path(), "w") as f:
                    f.write(text)
            except OSError as exc:
                self._state = PAUSED
                handler(FakeError(f"The virtual machine state could not be saved: {exc.strerror}"))
                return
            self._state = PAUSED
            handler(None)

        self._later(0.01, done)

    def restoreMachineStateFromURL_completionHandler_(self, url: Any,  # noqa: N802
                                                      handler: Callable[[Any], None]) -> None:
        self._assert_on_queue()
        failure = None if self._state == STOPPED else "the VM must be stopped to restore a saved state"
        saved: dict[str, Any] = {}
        if failure is None:
            try:
                with open(url.path()) as f:
                    saved = json.load(f)
            except (OSError, ValueError) as exc:
                failure = f"The saved state could not be read: {exc}"
        if failure is None and saved.get("configuration") != self._fingerprint():
            failure = "The saved state is incompatible with the virtual machine configuration."
        if failure is None:
            failure = self._take_disks()
        if failure:
            self._later(0, lambda: handler(FakeError(failure or "")))
            return
        self._state = RESTORING

        def done() -> None:
            self.memory = saved.get("memory")
            self.restored_from = url.path()
            self._state = PAUSED
            handler(None)

        self._later(0.01, done)


# -- Security --------------------------------------------------------------------------------------------


def _security(world: World) -> types.SimpleNamespace:
    def copy_value(task: Any, name: str, _error: None) -> tuple[Any, Any]:
        return (True if name == ENTITLEMENT and world.entitled else None), None

    return types.SimpleNamespace(SecTaskCreateFromSelf=lambda allocator: object(),
                                 SecTaskCopyValueForEntitlement=copy_value)


# -- the bindings -------------------------------------------------------------------------------------

_MACHINE_CLASSES = (VZVirtualMachine, VZVirtioSocketDevice, VZVirtioSocketConnection)
_CONSTANTS = dict(
    VZDiskImageCachingModeAutomatic=0, VZDiskImageCachingModeUncached=1, VZDiskImageCachingModeCached=2,
    VZDiskImageSynchronizationModeFull=1, VZDiskImageSynchronizationModeFsync=2,
    VZDiskImageSynchronizationModeNone=3,
    VZEFIVariableStoreInitializationOptionAllowOverwrite=devices.ALLOW_OVERWRITE,
    VZVirtualMachineStateStopped=STOPPED, VZVirtualMachineStateRunning=RUNNING,
    VZVirtualMachineStatePaused=PAUSED, VZVirtualMachineStateError=ERROR, VZVirtualMachineStateStarting=STARTING,
    VZVirtualMachineStateStopping=STOPPING, VZVirtualMachineStateSaving=SAVING,
    VZVirtualMachineStateRestoring=RESTORING,
    VZLinuxRosettaAvailabilityNotSupported=0, VZLinuxRosettaAvailabilityNotInstalled=1,
    VZLinuxRosettaAvailabilityInstalled=2,
)


class _Missing:
    """A class member this macOS does not have: reading it raises AttributeError, as pyobjc does."""

    def __init__(self, name: str, since: tuple[int, ...]) -> None:
        self.message = f"{name} needs macOS {'.'.join(map(str, since))}"

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        raise AttributeError(self.message)


def _available(name: str, world: World) -> bool:
    since = devices.INTRODUCED.get(name)
    if since is not None and world.macos < since:
        return False
    return not (name in devices.ARM64_ONLY and world.arch != "aarch64")


def _bound(cls: type, world: World) -> type:
    """A subclass of *cls* (same name) whose objects share *world* and lack what this macOS lacks."""
    namespace: dict[str, Any] = {"world": world, "__module__": __name__}
    hidden = [key.split(".", 1)[1] for key in devices.INTRODUCED
              if key.startswith(cls.__name__ + ".") and not _available(key, world)]
    if hidden:
        namespace["PROPERTIES"] = tuple(p for p in getattr(cls, "PROPERTIES", ()) if p not in hidden)
        for member in hidden:
            if hasattr(cls, member):
                namespace[member] = _Missing(f"{cls.__name__}.{member}", devices.INTRODUCED[f"{cls.__name__}.{member}"])
    return type(cls.__name__, (cls,), namespace)


def bindings(world: World | None = None) -> Bindings:
    """Fake pyobjc modules sharing *world* (a new one by default); ``.world`` is attached."""
    world = world or World()
    classes = {c.__name__: _bound(c, world) for c in (*devices.CLASSES, *_MACHINE_CLASSES)
               if _available(c.__name__, world)}
    vz = types.SimpleNamespace(**classes, **_CONSTANTS)
    foundation = types.SimpleNamespace(
        NSURL=_bound(NSURL, world), NSDate=_bound(NSDate, world), NSMutableData=NSMutableData,
        NSMakeRect=lambda x, y, w, h: (x, y, w, h), NSDefaultRunLoopMode="kCFRunLoopDefaultMode")
    appkit = types.SimpleNamespace(NSApplication=_bound(NSApplication, world), NSWindow=_bound(NSWindow, world))
    modules = {"Virtualization": vz, "Foundation": foundation, "libdispatch": _libdispatch(), "AppKit": appkit,
               "Quartz": _quartz(), "Security": _security(world)}

    def refuse(name: str) -> Any:
        raise ImportError(f"the fake Virtualization bindings have no module {name}")

    fake = Bindings(modules, importer=refuse, label="fake Virtualization.framework")
    fake.world = world  # type: ignore[attr-defined]
    return fake


def describe(obj: Any) -> Any:
    """Plain data for a recorded object tree: {"class", "init", **properties}; NSURLs become paths."""
    if isinstance(obj, NSURL):
        return obj.path()
    if isinstance(obj, (list, tuple)):
        return [describe(o) for o in obj]
    if isinstance(obj, FakeObject):
        out: dict[str, Any] = {"class": type(obj).__name__}
        if obj.initializer is not None and obj.initializer[0] != "init":
            out["init"] = [obj.initializer[0], *[describe(a) for a in obj.initializer[1]]]
        if isinstance(obj, devices.VZMACAddress):
            out["string"] = obj.text
        out.update({k: describe(v) for k, v in obj.props.items()})
        return out
    return obj


def guest_rosetta_socket(boot_script: bytes) -> str | None:
    """The socket path the driver's Rosetta boot script links for rosettad (``socket_expected=...``)."""
    for line in boot_script.decode().splitlines():
        if line.startswith("socket_expected="):
            return line.split("=", 1)[1].strip().strip("'\"")
    return None


__all__ = ["World", "bindings", "describe", "echo", "guest_rosetta_socket"]
