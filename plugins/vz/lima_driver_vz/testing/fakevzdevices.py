"""The configuration classes of the fake Virtualization module (see :mod:`.fakevz`).

Each class refuses what Virtualization.framework refuses, as its headers and
documentation state it (the wording of the errors is the fake's own):

- ``VZVirtualMachineConfiguration.validateSaveRestoreSupportWithError_``
  (macOS 14): refuses with ``world.save_restore_unsupported``;
- ``VZVirtualMachineConfiguration.validateWithError_``: the process's
  ``com.apple.security.virtualization`` entitlement first, then a boot
  loader and a platform, a CPU count between ``minimumAllowedCPUCount`` and
  ``maximumAllowedCPUCount``, and a memory size that is a whole number of
  MiB between ``minimumAllowedMemorySize`` and ``maximumAllowedMemorySize``;
- ``VZEFIVariableStore.initCreatingVariableStoreAtURL_options_error_``
  fails on an existing file unless the options hold
  ``VZEFIVariableStoreInitializationOptionAllowOverwrite``;
- ``VZDiskImageStorageDeviceAttachment`` opens raw images whose size is a
  multiple of 512 bytes (Lima rounds for that reason) and ASIF images from
  macOS 26; qcow2, VMDK, VHDX and VDI files are refused;
- the Rosetta classes exist on arm64 only, the caching options from macOS 14;
  a socket path longer than ``maximumPathLength`` is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .fakeobjc import NSURL, FakeError, FakeObject

MIB = 1 << 20
ALLOW_OVERWRITE = 1
ENTITLEMENT_ERROR = ('Invalid virtual machine configuration. The process doesn’t have the '
                     '“com.apple.security.virtualization” entitlement.')
#: Linux's sockaddr_un holds 108 bytes; the path is NUL-terminated
ROSETTA_MAX_PATH = 107
#: (offset, magic, name) of image formats the framework cannot attach
FOREIGN_IMAGES = ((0, b"QFI\xfb", "qcow2"), (0, b"KDMV", "VMDK"), (0, b"vhdxfile", "VHDX"),
                  (0x40, b"\x7f\x10\xda\xbe", "VDI"))
ASIF_MAGIC = b"shdw"


class VZVirtualMachineConfiguration(FakeObject):
    PROPERTIES = ("bootLoader", "CPUCount", "memorySize", "platform", "serialPorts", "networkDevices",
                  "storageDevices", "directorySharingDevices", "graphicsDevices", "audioDevices",
                  "entropyDevices", "memoryBalloonDevices", "socketDevices", "pointingDevices", "keyboards",
                  "consoleDevices")

    @classmethod
    def minimumAllowedCPUCount(cls) -> int:  # noqa: N802 - pyobjc names
        return cls.world.min_cpus

    @classmethod
    def maximumAllowedCPUCount(cls) -> int:  # noqa: N802
        return cls.world.max_cpus

    @classmethod
    def minimumAllowedMemorySize(cls) -> int:  # noqa: N802
        return cls.world.min_memory

    @classmethod
    def maximumAllowedMemorySize(cls) -> int:  # noqa: N802
        return cls.world.max_memory

    def validateSaveRestoreSupportWithError_(self, _error: None) -> tuple[bool, Any]:  # noqa: N802
        why = self.world.save_restore_unsupported
        return (False, FakeError(why)) if why else (True, None)

    def validateWithError_(self, _error: None) -> tuple[bool, Any]:  # noqa: N802
        world = self.world
        if not world.entitled:
            return False, FakeError(ENTITLEMENT_ERROR)
        for required in ("bootLoader", "platform"):
            if self.props.get(required) is None:
                return False, FakeError(f"Invalid virtual machine configuration. The {required} is not set.")
        cpus = self.props.get("CPUCount") or 0
        if not world.min_cpus <= cpus <= world.max_cpus:
            return False, FakeError(f"Invalid virtual machine configuration. The CPU count {cpus} is outside "
                                    f"{world.min_cpus}...{world.max_cpus}.")
        memory = self.props.get("memorySize") or 0
        if memory % MIB:
            return False, FakeError("Invalid virtual machine configuration. The memory size must be a multiple of "
                                    "1 MB.")
        if not world.min_memory <= memory <= world.max_memory:
            return False, FakeError(f"Invalid virtual machine configuration. The memory size {memory} is outside "
                                    f"{world.min_memory}...{world.max_memory}.")
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
        path = Path(url.path())
        if path.exists() and not options & ALLOW_OVERWRITE:
            return None, FakeError(f"The file “{path.name}” couldn’t be saved because a file with the same name "
                                   "already exists.")
        path.write_bytes(b"fake EFI variable store\n")
        self.props["URL"] = url
        return self._made("initCreatingVariableStoreAtURL:options:error:", url, options), None

    def initWithURL_(self, url: NSURL) -> Any:  # noqa: N802
        self.props["URL"] = url
        return self._made("initWithURL:", url)


class VZGenericMachineIdentifier(FakeObject):
    def init(self) -> Any:
        import plistlib
        import secrets

        self._data = plistlib.dumps({"ECID": secrets.randbits(64)}, fmt=plistlib.FMT_BINARY)
        return self._made("init")

    def initWithDataRepresentation_(self, data: bytes) -> Any:  # noqa: N802
        import plistlib

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


def image_problem(path: Path, macos: tuple[int, ...]) -> str | None:
    """Why the framework would not attach the image at *path*; None when it would."""
    with open(path, "rb") as f:
        head = f.read(0x48)
    for offset, magic, name in FOREIGN_IMAGES:
        if head[offset:offset + len(magic)] == magic:
            return f"The disk image format ({name}) is not supported."
    if head[:4] == ASIF_MAGIC:
        return None if macos >= (26,) else "The disk image format (ASIF) is not supported before macOS 26."
    size = path.stat().st_size
    if size % 512:
        return f"The disk image size ({size} bytes) is not a multiple of the 512-byte block size."
    return None


class VZDiskImageStorageDeviceAttachment(FakeObject):
    PROPERTIES = ("URL", "readOnly", "cachingMode", "synchronizationMode")

    def _attach(self, selector: str, url: NSURL, read_only: bool, *modes: int) -> tuple:
        path = Path(url.path())
        if not path.exists():
            return None, FakeError(f"The file {path} couldn’t be opened because there is no such file.")
        problem = image_problem(path, self.world.macos)
        if problem:
            return None, FakeError(problem)
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
        world = cls.world
        world.calls.append("VZLinuxRosettaDirectoryShare.installRosettaWithCompletionHandler:")
        error = FakeError(world.rosetta_install_error) if world.rosetta_install_error else None
        if error is None:
            world.rosetta_availability = 2
        threading.Thread(target=handler, args=(error,), daemon=True).start()

    def initWithError_(self, _e: None) -> tuple:  # noqa: N802
        if self.world.rosetta_availability != 2:
            return None, FakeError("Rosetta is not installed")
        return self._made("initWithError:"), None


class VZLinuxRosettaUnixSocketCachingOptions(FakeObject):
    @classmethod
    def maximumPathLength(cls) -> int:  # noqa: N802
        return ROSETTA_MAX_PATH

    def initWithPath_error_(self, path: str, _e: None) -> tuple:  # noqa: N802
        if len(path.encode()) > ROSETTA_MAX_PATH:
            return None, FakeError(f"The path exceeds the maximum length of {ROSETTA_MAX_PATH} bytes.")
        self._path = path
        return self._made("initWithPath:error:", path), None

    def path(self) -> str:
        return self._path


class VZLinuxRosettaAbstractSocketCachingOptions(FakeObject):
    @classmethod
    def maximumNameLength(cls) -> int:  # noqa: N802
        return ROSETTA_MAX_PATH

    def initWithName_error_(self, name: str, _e: None) -> tuple:  # noqa: N802
        if len(name.encode()) > ROSETTA_MAX_PATH:
            return None, FakeError(f"The name exceeds the maximum length of {ROSETTA_MAX_PATH} bytes.")
        self._name = name
        return self._made("initWithName:error:", name), None

    def name(self) -> str:
        return self._name


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


CLASSES = (
    VZVirtualMachineConfiguration, VZLinuxBootLoader, VZEFIBootLoader, VZEFIVariableStore, VZGenericMachineIdentifier,
    VZGenericPlatformConfiguration, VZFileSerialPortAttachment, VZVirtioConsoleDeviceSerialPortConfiguration,
    VZNATNetworkDeviceAttachment, VZMACAddress, VZVirtioNetworkDeviceConfiguration,
    VZDiskImageStorageDeviceAttachment, VZVirtioBlockDeviceConfiguration, VZUSBMassStorageDeviceConfiguration,
    VZSharedDirectory, VZSingleDirectoryShare, VZVirtioFileSystemDeviceConfiguration, VZLinuxRosettaDirectoryShare,
    VZLinuxRosettaUnixSocketCachingOptions, VZLinuxRosettaAbstractSocketCachingOptions,
    VZVirtioGraphicsScanoutConfiguration, VZVirtioGraphicsDeviceConfiguration, VZHostAudioOutputStreamSink,
    VZVirtioSoundDeviceOutputStreamConfiguration, VZVirtioSoundDeviceConfiguration,
    VZVirtioEntropyDeviceConfiguration, VZVirtioTraditionalMemoryBalloonDeviceConfiguration,
    VZVirtioSocketDeviceConfiguration, VZUSBScreenCoordinatePointingDeviceConfiguration, VZUSBKeyboardConfiguration,
    VZVirtualMachineView,
)
#: classes that exist only in arm64 builds of the framework (#ifdef __arm64__ in their headers)
ARM64_ONLY = frozenset({"VZLinuxRosettaDirectoryShare", "VZLinuxRosettaUnixSocketCachingOptions",
                        "VZLinuxRosettaAbstractSocketCachingOptions"})
#: "Class" or "Class.member" -> the macOS release that introduced it (API_AVAILABLE in the headers)
INTRODUCED = {
    "VZLinuxRosettaUnixSocketCachingOptions": (14, 0),
    "VZLinuxRosettaAbstractSocketCachingOptions": (14, 0),
    "VZVirtualMachineView.automaticallyReconfiguresDisplay": (14, 0),
    "VZGenericPlatformConfiguration.nestedVirtualizationEnabled": (15, 0),
    "VZGenericPlatformConfiguration.isNestedVirtualizationSupported": (15, 0),
    "VZVirtualMachineConfiguration.validateSaveRestoreSupportWithError_": (14, 0),
    "VZVirtualMachine.saveMachineStateToURL_completionHandler_": (14, 0),
    "VZVirtualMachine.restoreMachineStateFromURL_completionHandler_": (14, 0),
}
