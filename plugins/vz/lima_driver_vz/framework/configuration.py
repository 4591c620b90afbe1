"""A :class:`~lima_driver_vz.config.VMSpec` into a ``VZVirtualMachineConfiguration``.

One framework object per spec field, built with pyobjc's selector names
(``initWithURL_readOnly_error_`` and so on). Methods with an ``error:``
out-parameter are called with ``None`` and return ``(result, error)``, as
pyobjc does. Any refusal becomes StartFailed naming what was refused.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from lima_core.errors import StartFailed

from ..config import EFIBoot, LinuxBoot, Share, Storage, VMSpec
from . import Bindings

log = logging.getLogger("lima_driver_vz")

ROSETTA_NOT_SUPPORTED, ROSETTA_NOT_INSTALLED, ROSETTA_INSTALLED = 0, 1, 2
ROSETTA_INSTALL_TIMEOUT = 600.0
ROSETTA_CACHE_NAME = "rosetta"


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
    if boot.create or not Path(boot.variable_store).exists():
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


def _rosetta_share(b: Bindings, caching: bool) -> Any:
    vz = b.Virtualization
    share_cls = vz.VZLinuxRosettaDirectoryShare
    availability = share_cls.availability()
    if availability == ROSETTA_NOT_SUPPORTED:
        raise StartFailed("Rosetta is not supported on this Mac; set vmOpts.vz.rosetta.enabled to false")
    if availability == ROSETTA_NOT_INSTALLED:
        log.info("installing Rosetta (if this hangs, run `softwareupdate --install-rosetta`)")
        done = threading.Event()
        failure: list[Any] = []

        def installed(error: Any) -> None:
            if error is not None:
                failure.append(error)
            done.set()

        share_cls.installRosettaWithCompletionHandler_(installed)
        if not done.wait(ROSETTA_INSTALL_TIMEOUT):
            raise StartFailed("Rosetta was not installed within 10 minutes; run `softwareupdate --install-rosetta`")
        if failure:
            raise StartFailed(f"cannot install Rosetta: {_describe(failure[0])}")
    share = _checked(share_cls.alloc().initWithError_(None), "cannot share Rosetta with the guest")
    if caching:
        share.setOptions_(_checked(vz.VZLinuxRosettaAbstractSocketCachingOptions.alloc().initWithName_error_(
            ROSETTA_CACHE_NAME, None), "cannot set up Rosetta's caching"))
    return share


def directory_share(b: Bindings, s: Share, rosetta_caching: bool) -> Any:
    vz = b.Virtualization
    ok, error = vz.VZVirtioFileSystemDeviceConfiguration.validateTag_error_(s.tag, None)
    if not ok:
        raise StartFailed(f"invalid virtiofs tag {s.tag!r}: {_describe(error)}")
    device = vz.VZVirtioFileSystemDeviceConfiguration.alloc().initWithTag_(s.tag)
    if s.rosetta:
        device.setShare_(_rosetta_share(b, rosetta_caching))
    else:
        assert s.path is not None
        directory = vz.VZSharedDirectory.alloc().initWithURL_readOnly_(_url(b, s.path), s.read_only)
        device.setShare_(vz.VZSingleDirectoryShare.alloc().initWithDirectory_(directory))
    return device


def realize(b: Bindings, spec: VMSpec, identifier: bytes) -> Any:
    """A validated ``VZVirtualMachineConfiguration`` for *spec*."""
    vz = b.Virtualization
    config = vz.VZVirtualMachineConfiguration.alloc().init()
    config.setBootLoader_(boot_loader(b, spec.boot))
    config.setCPUCount_(spec.cpus)
    config.setMemorySize_(spec.memory)
    config.setPlatform_(platform(b, identifier, spec.platform.nested_virtualization))
    config.setSerialPorts_([serial_port(b, spec.serial_log)])
    config.setNetworkDevices_([network_device(b, nic.mac_address) for nic in spec.nics])
    config.setStorageDevices_([storage_device(b, s) for s in spec.storage])
    if spec.shares:
        config.setDirectorySharingDevices_([directory_share(b, s, spec.rosetta_caching) for s in spec.shares])
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
