"""A :class:`~lima_driver_vz.config.VMSpec` into a ``VZVirtualMachineConfiguration``.

One framework object per spec field, built with pyobjc's selector names
(``initWithURL_readOnly_error_`` and so on). Methods with an ``error:``
out-parameter are called with ``None`` and return ``(result, error)``, as
pyobjc does. Any refusal becomes StartFailed naming what was refused, and
the limits the framework enforces are checked first so the message says
what to change: the CPU count and memory size against the class's allowed
range (memory in whole MiB), an EFI variable store created only when none
exists (the framework does not overwrite one).

Rosetta, as Lima does it, never stops the VM: when it is not supported,
cannot be installed or cannot be shared, a warning says so and the VM boots
without it (the guest's boot script then skips it). On macOS 14 or later
Rosetta's ahead-of-time cache is reached through the Unix socket
:data:`~lima_driver_vz.config.ROSETTA_CACHE_SOCKET`, where the driver's boot
script links ``rosettad``'s socket.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from lima_core.errors import StartFailed
from lima_core.units import format_size

from ..config import ROSETTA_CACHE_SOCKET, EFIBoot, LinuxBoot, Share, Storage, VMSpec
from . import Bindings

log = logging.getLogger("lima_driver_vz")

ROSETTA_NOT_SUPPORTED, ROSETTA_NOT_INSTALLED, ROSETTA_INSTALLED = 0, 1, 2
ROSETTA_INSTALL_TIMEOUT = 600.0
MIB = 1 << 20


class RosettaUnavailable(Exception):
    """Rosetta cannot be shared with this VM; the message says why."""


def _describe(error: Any) -> str:
    if error is None:
        return "unknown error"
    describe = getattr(error, "localizedDescription", None)
    return str(describe()) if callable(describe) else str(error)


def _checked(result: Any, what: str) -> Any:
    """Unpack pyobjc's ``(object, error)`` and fail on a nil object."""
    obj, error = result
    if obj is None or obj is False:
        raise StartFailed(f"{what}: {_describe(error)}")
    return obj


def _url(b: Bindings, path: str) -> Any:
    return b.Foundation.NSURL.fileURLWithPath_(path)


def boot_loader(b: Bindings, boot: LinuxBoot | EFIBoot) -> Any:
    vz = b.Virtualization
    if isinstance(boot, LinuxBoot):
        loader = vz.VZLinuxBootLoader.alloc().initWithKernelURL_(_url(b, boot.kernel))
        if boot.command_line is not None:
            loader.setCommandLine_(boot.command_line)
        if boot.initrd is not None:
            loader.setInitialRamdiskURL_(_url(b, boot.initrd))
        return loader
    if not Path(boot.variable_store).exists():
        store = _checked(vz.VZEFIVariableStore.alloc().initCreatingVariableStoreAtURL_options_error_(
            _url(b, boot.variable_store), 0, None), f"cannot create the EFI variable store {boot.variable_store}")
    else:
        store = vz.VZEFIVariableStore.alloc().initWithURL_(_url(b, boot.variable_store))
    loader = vz.VZEFIBootLoader.alloc().init()
    loader.setVariableStore_(store)
    return loader


def platform(b: Bindings, identifier: bytes, nested: bool) -> Any:
    vz = b.Virtualization
    machine_id = vz.VZGenericMachineIdentifier.alloc().initWithDataRepresentation_(identifier)
    if machine_id is None:
        raise StartFailed("vz-identifier does not hold a machine identifier; empty the file to have a new one made")
    config = vz.VZGenericPlatformConfiguration.alloc().init()
    config.setMachineIdentifier_(machine_id)
    if nested:
        if not vz.VZGenericPlatformConfiguration.isNestedVirtualizationSupported():
            raise StartFailed("nested virtualization is not supported on this Mac")
        config.setNestedVirtualizationEnabled_(True)
    return config


def serial_port(b: Bindings, log_path: str) -> Any:
    vz = b.Virtualization
    attachment = _checked(vz.VZFileSerialPortAttachment.alloc().initWithURL_append_error_(
        _url(b, log_path), False, None), f"cannot open {log_path} for the serial console")
    port = vz.VZVirtioConsoleDeviceSerialPortConfiguration.alloc().init()
    port.setAttachment_(attachment)
    return port


def network_device(b: Bindings, mac: str) -> Any:
    vz = b.Virtualization
    device = vz.VZVirtioNetworkDeviceConfiguration.alloc().init()
    device.setAttachment_(vz.VZNATNetworkDeviceAttachment.alloc().init())
    address = vz.VZMACAddress.alloc().initWithString_(mac)
    if address is None:
        raise StartFailed(f"{mac!r} is not a MAC address")
    device.setMACAddress_(address)
    return device


def storage_device(b: Bindings, s: Storage) -> Any:
    vz = b.Virtualization
    url = _url(b, s.path)
    if s.caching is not None:
        caching = {"cached": vz.VZDiskImageCachingModeCached, "automatic": vz.VZDiskImageCachingModeAutomatic,
                   "uncached": vz.VZDiskImageCachingModeUncached}[s.caching]
        sync = {"fsync": vz.VZDiskImageSynchronizationModeFsync, "full": vz.VZDiskImageSynchronizationModeFull,
                "none": vz.VZDiskImageSynchronizationModeNone}[s.sync or "fsync"]
        result = vz.VZDiskImageStorageDeviceAttachment.alloc() \
            .initWithURL_readOnly_cachingMode_synchronizationMode_error_(url, s.read_only, caching, sync, None)
    else:
        result = vz.VZDiskImageStorageDeviceAttachment.alloc().initWithURL_readOnly_error_(url, s.read_only, None)
    attachment = _checked(result, f"cannot attach {s.path}")
    cls = vz.VZUSBMassStorageDeviceConfiguration if s.bus == "usb" else vz.VZVirtioBlockDeviceConfiguration
    return cls.alloc().initWithAttachment_(attachment)


def check_resources(b: Bindings, cpus: int, memory: int) -> None:
    """StartFailed, naming the setting, unless the framework accepts *cpus* and *memory* on this Mac."""
    limits = b.Virtualization.VZVirtualMachineConfiguration
    low, high = int(limits.minimumAllowedCPUCount()), int(limits.maximumAllowedCPUCount())
    if not low <= cpus <= high:
        raise StartFailed(f"cpus: {cpus} is outside what Virtualization.framework allows on this Mac ({low} to "
                          f"{high}); set `cpus` within that range")
    if memory % MIB:
        raise StartFailed(f"memory: {memory} bytes is not a whole number of MiB, which Virtualization.framework "
                          f"requires; use e.g. {format_size(memory // MIB * MIB)}")
    low, high = int(limits.minimumAllowedMemorySize()), int(limits.maximumAllowedMemorySize())
    if not low <= memory <= high:
        raise StartFailed(f"memory: {format_size(memory)} is outside what Virtualization.framework allows on this "
                          f"Mac ({format_size(low)} to {format_size(high)}); set `memory` within that range")


def _install_rosetta(share_cls: Any) -> None:
    log.info("installing Rosetta (if this hangs, run `softwareupdate --install-rosetta`)")
    done = threading.Event()
    failure: list[Any] = []

    def installed(error: Any) -> None:
        if error is not None:
            failure.append(error)
        done.set()

    share_cls.installRosettaWithCompletionHandler_(installed)
    if not done.wait(ROSETTA_INSTALL_TIMEOUT):
        raise RosettaUnavailable("it was not installed within 10 minutes; run `softwareupdate --install-rosetta`")
    if failure:
        raise RosettaUnavailable(f"it could not be installed: {_describe(failure[0])}; run "
                                 "`softwareupdate --install-rosetta`")


def _rosetta_share(b: Bindings, caching: bool) -> Any:
    """The Rosetta directory share; RosettaUnavailable when this Mac cannot give one."""
    vz = b.Virtualization
    share_cls = getattr(vz, "VZLinuxRosettaDirectoryShare", None)
    if share_cls is None:  # the class exists in arm64 builds of the framework only
        raise RosettaUnavailable("this Mac has no Rosetta for Linux (it needs Apple silicon)")
    availability = share_cls.availability()
    if availability == ROSETTA_NOT_SUPPORTED:
        raise RosettaUnavailable("Virtualization.framework reports it as not supported on this Mac")
    if availability == ROSETTA_NOT_INSTALLED:
        _install_rosetta(share_cls)
    share, error = share_cls.alloc().initWithError_(None)
    if share is None:
        raise RosettaUnavailable(f"it cannot be shared with the guest: {_describe(error)}")
    if caching:
        options, error = vz.VZLinuxRosettaUnixSocketCachingOptions.alloc().initWithPath_error_(
            ROSETTA_CACHE_SOCKET, None)
        if options is None:
            log.warning("Rosetta runs without its ahead-of-time cache: %s", _describe(error))
        else:
            share.setOptions_(options)
    return share


def directory_share(b: Bindings, s: Share, rosetta_caching: bool) -> Any:
    """The virtiofs device for *s*; None for a Rosetta share this Mac cannot give (a warning says why)."""
    vz = b.Virtualization
    ok, error = vz.VZVirtioFileSystemDeviceConfiguration.validateTag_error_(s.tag, None)
    if not ok:
        raise StartFailed(f"invalid virtiofs tag {s.tag!r}: {_describe(error)}")
    if s.rosetta:
        try:
            share = _rosetta_share(b, rosetta_caching)
        except RosettaUnavailable as exc:
            log.warning("Unable to configure Rosetta: %s; the VM boots without it (x86_64 programs will not run "
                        "in the guest through Rosetta)", exc)
            return None
    else:
        assert s.path is not None
        directory = vz.VZSharedDirectory.alloc().initWithURL_readOnly_(_url(b, s.path), s.read_only)
        share = vz.VZSingleDirectoryShare.alloc().initWithDirectory_(directory)
    device = vz.VZVirtioFileSystemDeviceConfiguration.alloc().initWithTag_(s.tag)
    device.setShare_(share)
    return device


def realize(b: Bindings, spec: VMSpec, identifier: bytes) -> Any:
    """A validated ``VZVirtualMachineConfiguration`` for *spec*."""
    vz = b.Virtualization
    check_resources(b, spec.cpus, spec.memory)
    config = vz.VZVirtualMachineConfiguration.alloc().init()
    config.setBootLoader_(boot_loader(b, spec.boot))
    config.setCPUCount_(spec.cpus)
    config.setMemorySize_(spec.memory)
    config.setPlatform_(platform(b, identifier, spec.platform.nested_virtualization))
    config.setSerialPorts_([serial_port(b, spec.serial_log)])
    config.setNetworkDevices_([network_device(b, nic.mac_address) for nic in spec.nics])
    config.setStorageDevices_([storage_device(b, s) for s in spec.storage])
    shares = [device for device in (directory_share(b, s, spec.rosetta_caching) for s in spec.shares) if device]
    if shares:
        config.setDirectorySharingDevices_(shares)
    if spec.display is not None:
        graphics = vz.VZVirtioGraphicsDeviceConfiguration.alloc().init()
        graphics.setScanouts_([vz.VZVirtioGraphicsScanoutConfiguration.alloc()
                               .initWithWidthInPixels_heightInPixels_(*spec.display)])
        config.setGraphicsDevices_([graphics])
    if spec.audio_output:
        stream = vz.VZVirtioSoundDeviceOutputStreamConfiguration.alloc().init()
        stream.setSink_(vz.VZHostAudioOutputStreamSink.alloc().init())
        sound = vz.VZVirtioSoundDeviceConfiguration.alloc().init()
        sound.setStreams_([stream])
        config.setAudioDevices_([sound])
    if spec.entropy:
        config.setEntropyDevices_([vz.VZVirtioEntropyDeviceConfiguration.alloc().init()])
    if spec.memory_balloon:
        config.setMemoryBalloonDevices_([vz.VZVirtioTraditionalMemoryBalloonDeviceConfiguration.alloc().init()])
    if spec.vsock:
        config.setSocketDevices_([vz.VZVirtioSocketDeviceConfiguration.alloc().init()])
    if spec.usb_input:
        config.setPointingDevices_([vz.VZUSBScreenCoordinatePointingDeviceConfiguration.alloc().init()])
        config.setKeyboards_([vz.VZUSBKeyboardConfiguration.alloc().init()])
    _checked(config.validateWithError_(None), "Virtualization.framework refused the VM configuration")
    return config
