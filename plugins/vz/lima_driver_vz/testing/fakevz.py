"""A fake of the pyobjc modules lima-driver-vz calls, recording what was configured.

``bindings()`` returns :class:`~lima_driver_vz.framework.Bindings` holding
fake ``Virtualization``, ``Foundation``, ``libdispatch``, ``AppKit`` and
``Quartz`` modules, sharing one :class:`World` (reachable as
``bindings.world``). Select it with ``VZDriver(framework=bindings())``, or in
another process with ``LIMA_VZ_FRAMEWORK=lima_driver_vz.testing.fakevz:bindings``.

Faithful where it matters to the driver:

- classes are made with ``alloc()`` and an ``init...`` selector; properties
  are set with ``setX_`` and read with ``x()``; a selector the real class
  does not have raises AttributeError, so a misspelt call fails the test;
- methods with an ``error:`` out-parameter return ``(result, error)``;
- ``VZVirtualMachine`` walks starting -> running, and running -> stopped
  after ``requestStopWithError_`` (or never, with ``world.ignore_stop``);
  ``socketDevices()[0].connectToPort_completionHandler_`` connects to the
  handlers in ``world.vsock_listeners`` (port 2222 echoes, like a guest
  agent that answers) through a socketpair;
- ``libdispatch`` queues are serial: ``dispatch_sync`` runs the block under
  the queue's lock.

:func:`describe` turns a recorded object into plain data for assertions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import plistlib
import secrets
import socket
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..framework import Bindings
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

STOPPED, RUNNING, PAUSED, ERROR, STARTING, PAUSING, RESUMING, STOPPING = range(8)


def echo(conn: socket.socket) -> None:
    """A vsock listener that echoes what it receives (a stand-in guest agent)."""
    with contextlib.suppress(OSError):
        while data := conn.recv(65536):
            conn.sendall(data)
    conn.close()


@dataclasses.dataclass
class World:
    """Behaviour of the fake, and what it saw."""

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
    nested_supported: bool = True
    #: guest vsock port -> handler of the guest end of each connection
    vsock_listeners: dict[int, Callable[[socket.socket], None]] = dataclasses.field(
        default_factory=lambda: {2222: echo})
    #: every VZVirtualMachine made, in order
    machines: list[Any] = dataclasses.field(default_factory=list)
    #: selectors called on class objects (e.g. "VZLinuxRosettaDirectoryShare.installRosetta...")
    calls: list[str] = dataclasses.field(default_factory=list)


# -- Virtualization: configuration ------------------------------------------------------------


class VZVirtualMachineConfiguration(FakeObject):
    PROPERTIES = ("bootLoader", "CPUCount", "memorySize", "platform", "serialPorts", "networkDevices",
                  "storageDevices", "directorySharingDevices", "graphicsDevices", "audioDevices",
                  "entropyDevices", "memoryBalloonDevices", "socketDevices", "pointingDevices", "keyboards",
                  "consoleDevices")

    def validateWithError_(self, _error: None) -> tuple[bool, Any]:  # noqa: N802
        for required in ("bootLoader", "platform"):
            if self.props.get(required) is None:
                return False, FakeError(f"the configuration has no {required}")
        if (self.props.get("CPUCount") or 0) < 1 or (self.props.get("memorySize") or 0) < 128 << 20:
            return False, FakeError("CPU count or memory size is below the minimum")
        return True, None


class VZLinuxBootLoader(FakeObject):
    PROPERTIES = ("kernelURL", "commandLine", "initialRamdiskURL")

    def initWithKernelURL_(self, url: NSURL) -> Any:  # noqa: N802
        self.props["kernelURL"] = url
        return self._made("initWithKernelURL:", url)


class VZEFIBootLoader(FakeObject):
    PROPERTIES = ("variableStore",)


class VZEFIVariableStore(FakeObject):
    PROPERTIES = ("URL",)

    def initCreatingVariableStoreAtURL_options_error_(self, url: NSURL, options: int, _e: None) -> tuple:  # noqa: N802
        Path(url.path()).write_bytes(b"fake EFI variable store\n")
        self.props["URL"] = url
        return self._made("initCreatingVariableStoreAtURL:options:error:", url, options), None

    def initWithURL_(self, url: NSURL) -> Any:  # noqa: N802
        self.props["URL"] = url
        return self._made("initWithURL:", url)


class VZGenericMachineIdentifier(FakeObject):
    def init(self) -> Any:
        self._data = plistlib.dumps({"ECID": secrets.randbits(64)}, fmt=plistlib.FMT_BINARY)
        return self._made("init")

    def initWithDataRepresentation_(self, data: bytes) -> Any:  # noqa: N802
        try:
            parsed = plistlib.loads(bytes(data))
        except Exception:  # noqa: BLE001 - any junk means "not an identifier", as the framework's nil
            return None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("ECID"), int):
            return None
        self._data = bytes(data)
        return self._made("initWithDataRepresentation:", bytes(data))

    def dataRepresentation(self) -> bytes:  # noqa: N802
        return self._data


class VZGenericPlatformConfiguration(FakeObject):
    PROPERTIES = ("machineIdentifier", "nestedVirtualizationEnabled")

    @classmethod
    def isNestedVirtualizationSupported(cls) -> bool:  # noqa: N802
        return cls.world.nested_supported


class VZFileSerialPortAttachment(FakeObject):
    PROPERTIES = ("URL", "append")

    def initWithURL_append_error_(self, url: NSURL, append: bool, _e: None) -> tuple:  # noqa: N802
        with open(url.path(), "ab" if append else "wb"):
            pass
        self.props.update(URL=url, append=append)
        return self._made("initWithURL:append:error:", url, append), None


class VZVirtioConsoleDeviceSerialPortConfiguration(FakeObject):
    PROPERTIES = ("attachment",)


class VZNATNetworkDeviceAttachment(FakeObject):
    pass


class VZMACAddress(FakeObject):
    def initWithString_(self, text: str) -> Any:  # noqa: N802
        parts = text.split(":")
        if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
            return None
        self.text = text.lower()
        return self._made("initWithString:", text)

    def string(self) -> str:
        return self.text


class VZVirtioNetworkDeviceConfiguration(FakeObject):
    PROPERTIES = ("attachment", "MACAddress")


class VZDiskImageStorageDeviceAttachment(FakeObject):
    PROPERTIES = ("URL", "readOnly", "cachingMode", "synchronizationMode")

    def _attach(self, selector: str, url: NSURL, read_only: bool, *modes: int) -> tuple:
        if not Path(url.path()).exists():
            return None, FakeError(f"The file {url.path()} couldn't be opened because there is no such file.")
        self.props.update(URL=url, readOnly=read_only)
        if modes:
            self.props.update(cachingMode=modes[0], synchronizationMode=modes[1])
        return self._made(selector, url, read_only, *modes), None

    def initWithURL_readOnly_error_(self, url: NSURL, read_only: bool, _e: None) -> tuple:  # noqa: N802
        return self._attach("initWithURL:readOnly:error:", url, read_only)

    def initWithURL_readOnly_cachingMode_synchronizationMode_error_(  # noqa: N802
            self, url: NSURL, read_only: bool, caching: int, sync: int, _e: None) -> tuple:
        return self._attach("initWithURL:readOnly:cachingMode:synchronizationMode:error:", url, read_only,
                            caching, sync)


class _StorageDevice(FakeObject):
    PROPERTIES = ("attachment",)

    def initWithAttachment_(self, attachment: Any) -> Any:  # noqa: N802
        self.props["attachment"] = attachment
        return self._made("initWithAttachment:", attachment)


class VZVirtioBlockDeviceConfiguration(_StorageDevice):
    pass


class VZUSBMassStorageDeviceConfiguration(_StorageDevice):
    pass


class VZSharedDirectory(FakeObject):
    PROPERTIES = ("URL", "readOnly")

    def initWithURL_readOnly_(self, url: NSURL, read_only: bool) -> Any:  # noqa: N802
        self.props.update(URL=url, readOnly=read_only)
        return self._made("initWithURL:readOnly:", url, read_only)


class VZSingleDirectoryShare(FakeObject):
    PROPERTIES = ("directory",)

    def initWithDirectory_(self, directory: VZSharedDirectory) -> Any:  # noqa: N802
        self.props["directory"] = directory
        return self._made("initWithDirectory:", directory)


class VZVirtioFileSystemDeviceConfiguration(FakeObject):
    PROPERTIES = ("tag", "share")

    @classmethod
    def validateTag_error_(cls, tag: str, _e: None) -> tuple[bool, Any]:  # noqa: N802
        if not tag or len(tag.encode()) > 36:
            return False, FakeError(f"invalid tag {tag!r}")
        return True, None

    def initWithTag_(self, tag: str) -> Any:  # noqa: N802
        self.props["tag"] = tag
        return self._made("initWithTag:", tag)


class VZLinuxRosettaDirectoryShare(FakeObject):
    PROPERTIES = ("options",)

    @classmethod
    def availability(cls) -> int:
        return cls.world.rosetta_availability

    @classmethod
    def installRosettaWithCompletionHandler_(cls, handler: Callable[[Any], None]) -> None:  # noqa: N802
        cls.world.calls.append("VZLinuxRosettaDirectoryShare.installRosettaWithCompletionHandler:")
        cls.world.rosetta_availability = 2
        threading.Thread(target=handler, args=(None,), daemon=True).start()

    def initWithError_(self, _e: None) -> tuple:  # noqa: N802
        if self.world.rosetta_availability != 2:
            return None, FakeError("Rosetta is not installed")
        return self._made("initWithError:"), None


class VZLinuxRosettaAbstractSocketCachingOptions(FakeObject):
    def initWithName_error_(self, name: str, _e: None) -> tuple:  # noqa: N802
        return self._made("initWithName:error:", name), None


class VZVirtioGraphicsScanoutConfiguration(FakeObject):
    def initWithWidthInPixels_heightInPixels_(self, width: int, height: int) -> Any:  # noqa: N802
        return self._made("initWithWidthInPixels:heightInPixels:", width, height)


class VZVirtioGraphicsDeviceConfiguration(FakeObject):
    PROPERTIES = ("scanouts",)


class VZHostAudioOutputStreamSink(FakeObject):
    pass


class VZVirtioSoundDeviceOutputStreamConfiguration(FakeObject):
    PROPERTIES = ("sink",)


class VZVirtioSoundDeviceConfiguration(FakeObject):
    PROPERTIES = ("streams",)


class VZVirtioEntropyDeviceConfiguration(FakeObject):
    pass


class VZVirtioTraditionalMemoryBalloonDeviceConfiguration(FakeObject):
    pass


class VZVirtioSocketDeviceConfiguration(FakeObject):
    pass


class VZUSBScreenCoordinatePointingDeviceConfiguration(FakeObject):
    pass


class VZUSBKeyboardConfiguration(FakeObject):
    pass


class VZVirtualMachineView(FakeObject):
    PROPERTIES = ("virtualMachine", "capturesSystemKeys", "automaticallyReconfiguresDisplay")

    def initWithFrame_(self, frame: Any) -> Any:  # noqa: N802
        return self._made("initWithFrame:", frame)


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


class VZVirtualMachine(FakeObject):
    def __init__(self) -> None:
        super().__init__()
        self._state = STOPPED
        self._config: Any = None
        self._queue: Any = None
        self.stop_requests = 0

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

    def startWithCompletionHandler_(self, handler: Callable[[Any], None]) -> None:  # noqa: N802
        self._assert_on_queue()
        if self.world.start_error:
            self._later(0, lambda: handler(FakeError(self.world.start_error or "")))
            return
        self._state = STARTING

        def running() -> None:
            self._state = RUNNING
            self._serial("fake vz: the guest is running\n")
            handler(None)
            if self.world.stops_after is not None:
                self._later(self.world.stops_after, self._power_off)

        self._later(0.01, running)

    def _power_off(self) -> None:
        self._serial("fake vz: the guest powered off\n")
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


# -- the bindings -------------------------------------------------------------------------------------

_VZ_CLASSES = (
    VZVirtualMachineConfiguration, VZLinuxBootLoader, VZEFIBootLoader, VZEFIVariableStore, VZGenericMachineIdentifier,
    VZGenericPlatformConfiguration, VZFileSerialPortAttachment, VZVirtioConsoleDeviceSerialPortConfiguration,
    VZNATNetworkDeviceAttachment, VZMACAddress, VZVirtioNetworkDeviceConfiguration,
    VZDiskImageStorageDeviceAttachment, VZVirtioBlockDeviceConfiguration, VZUSBMassStorageDeviceConfiguration,
    VZSharedDirectory, VZSingleDirectoryShare, VZVirtioFileSystemDeviceConfiguration, VZLinuxRosettaDirectoryShare,
    VZLinuxRosettaAbstractSocketCachingOptions, VZVirtioGraphicsScanoutConfiguration,
    VZVirtioGraphicsDeviceConfiguration, VZHostAudioOutputStreamSink, VZVirtioSoundDeviceOutputStreamConfiguration,
    VZVirtioSoundDeviceConfiguration, VZVirtioEntropyDeviceConfiguration,
    VZVirtioTraditionalMemoryBalloonDeviceConfiguration, VZVirtioSocketDeviceConfiguration,
    VZUSBScreenCoordinatePointingDeviceConfiguration, VZUSBKeyboardConfiguration, VZVirtualMachine,
    VZVirtioSocketDevice, VZVirtioSocketConnection, VZVirtualMachineView,
)
_CONSTANTS = dict(
    VZDiskImageCachingModeAutomatic=0, VZDiskImageCachingModeUncached=1, VZDiskImageCachingModeCached=2,
    VZDiskImageSynchronizationModeFull=1, VZDiskImageSynchronizationModeFsync=2,
    VZDiskImageSynchronizationModeNone=3,
    VZVirtualMachineStateStopped=STOPPED, VZVirtualMachineStateRunning=RUNNING,
    VZVirtualMachineStatePaused=PAUSED, VZVirtualMachineStateError=ERROR, VZVirtualMachineStateStarting=STARTING,
    VZVirtualMachineStateStopping=STOPPING,
    VZLinuxRosettaAvailabilityNotSupported=0, VZLinuxRosettaAvailabilityNotInstalled=1,
    VZLinuxRosettaAvailabilityInstalled=2,
)


def _bound(cls: type, world: World) -> type:
    """A subclass of *cls* (same name) whose objects share *world*."""
    return type(cls.__name__, (cls,), {"world": world, "__module__": __name__})


def bindings(world: World | None = None) -> Bindings:
    """Fake pyobjc modules sharing *world* (a new one by default); ``.world`` is attached."""
    world = world or World()
    vz = types.SimpleNamespace(**{c.__name__: _bound(c, world) for c in _VZ_CLASSES}, **_CONSTANTS)
    foundation = types.SimpleNamespace(
        NSURL=_bound(NSURL, world), NSDate=_bound(NSDate, world), NSMutableData=NSMutableData,
        NSMakeRect=lambda x, y, w, h: (x, y, w, h), NSDefaultRunLoopMode="kCFRunLoopDefaultMode")
    appkit = types.SimpleNamespace(NSApplication=_bound(NSApplication, world), NSWindow=_bound(NSWindow, world))
    modules = {"Virtualization": vz, "Foundation": foundation, "libdispatch": _libdispatch(), "AppKit": appkit,
               "Quartz": _quartz()}

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
        if isinstance(obj, VZMACAddress):
            out["string"] = obj.text
        out.update({k: describe(v) for k, v in obj.props.items()})
        return out
    return obj
