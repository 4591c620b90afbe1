"""The VM configuration: config.build (plain data) and framework.configuration.realize (through the fake)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lima_driver_vz import config, datadisks, identifier
from lima_driver_vz.config import EFIBoot, LinuxBoot, Share, Storage
from lima_driver_vz.framework.configuration import realize
from lima_driver_vz.hostinfo import HostFacts
from lima_driver_vz.testing import fakevz
from lima_driver_vz.testing.fakevz import describe
from vz_helpers import make_bootable

from lima_core import mounts
from lima_core.errors import StartFailed
from lima_core.network import mac_address


def spec_of(host: Any, inst: Any, facts: HostFacts | None = None) -> config.VMSpec:
    driver = host.driver
    return config.build(inst, facts or driver.facts, driver.options)


def test_default_spec(make: Callable) -> None:
    host, inst = make()
    d = make_bootable(inst)
    spec = spec_of(host, inst)
    assert spec.cpus == 1 and spec.memory == 512 << 20
    assert spec.boot == EFIBoot(variable_store=str(d / "vz-efi"), create=True)
    assert spec.platform.identifier == str(d / "vz-identifier") and not spec.platform.nested_virtualization
    assert spec.serial_log == str(d / "serialv.log")
    assert [n.mac_address for n in spec.nics] == [mac_address(d)]
    assert spec.storage == (Storage(str(d / "disk"), False, "virtio-blk", "cached", "fsync"),
                            Storage(str(d / "cidata.iso"), True, "virtio-blk"))
    assert spec.shares == () and spec.display is None and not spec.audio_output
    assert spec.entropy and spec.memory_balloon and spec.vsock and spec.usb_input


def test_existing_efi_store_is_reused(make: Callable) -> None:
    host, inst = make()
    d = make_bootable(inst)
    (d / "vz-efi").write_bytes(b"store")
    assert spec_of(host, inst).boot == EFIBoot(str(d / "vz-efi"), create=False)


def test_kernel_selects_the_linux_boot_loader(make: Callable) -> None:
    host, inst = make()
    d = make_bootable(inst)
    (d / "kernel").write_bytes(b"k")
    assert spec_of(host, inst).boot == LinuxBoot(str(d / "kernel"))
    (d / "kernel.cmdline").write_text("console=hvc0 root=/dev/vda1\n")
    (d / "initrd").write_bytes(b"i")
    assert spec_of(host, inst).boot == LinuxBoot(str(d / "kernel"), "console=hvc0 root=/dev/vda1", str(d / "initrd"))


def test_iso_additional_disks_and_order(make: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    host, inst = make({"additionalDisks": ["data", {"name": "more"}]})
    d = make_bootable(inst)
    (d / "iso").write_bytes(b"\0" * 2048)
    for name in ("data", "more"):
        datadisks.path(name).parent.mkdir(parents=True)
        datadisks.path(name).write_bytes(b"\0" * 512)
    storage = spec_of(host, inst).storage
    assert [(s.path, s.read_only, s.bus) for s in storage] == [
        (str(d / "disk"), False, "virtio-blk"), (str(d / "iso"), True, "usb"),
        (str(datadisks.path("data")), False, "virtio-blk"), (str(datadisks.path("more")), False, "virtio-blk"),
        (str(d / "cidata.iso"), True, "virtio-blk")]


@pytest.mark.parametrize("missing, message", [("cidata.iso", "cidata is generated before start"),
                                              ("disk", "created from the image by create_disk"),
                                              ("vz-identifier", "run `lima create`")])
def test_missing_files_are_start_failures(make: Callable, missing: str, message: str) -> None:
    host, inst = make()
    d = make_bootable(inst)
    (d / missing).unlink()
    with pytest.raises(StartFailed, match=message):
        spec_of(host, inst)


def test_a_qcow2_disk_is_refused(make: Callable) -> None:
    host, inst = make()
    d = make_bootable(inst)
    (d / "disk").write_bytes(b"QFI\xfb" + b"\0" * 64)
    with pytest.raises(StartFailed, match="is a qcow2 image; vz needs raw or ASIF"):
        spec_of(host, inst)


def test_networks_mounts_display_audio(make: Callable, tmp_path: Path) -> None:
    share = tmp_path / "share"
    host, inst = make({"networks": [{"vzNAT": True, "macAddress": "52:55:55:aa:bb:cc"}, {"vzNAT": True}],
                       "mounts": [{"location": str(share), "writable": True}, {"location": "/ro", "mountPoint": "/m"}],
                       "video": {"display": "default"}, "audio": {"device": "vz"}})
    d = make_bootable(inst)
    spec = spec_of(host, inst)
    assert [n.mac_address for n in spec.nics] == [mac_address(d), "52:55:55:aa:bb:cc", mac_address(f"{d}#1")]
    assert spec.shares == (Share(mounts.mount_tag(str(share), str(share)), str(share), read_only=False),
                           Share(mounts.mount_tag("/ro", "/m"), "/ro", read_only=True))
    assert spec.display == (1920, 1200) and spec.audio_output


def test_mounts_are_not_shared_over_virtiofs_for_other_mount_types(make: Callable) -> None:
    host, inst = make({"mountType": "reverse-sshfs", "mounts": [{"location": "/x"}]})
    make_bootable(inst)
    assert spec_of(host, inst).shares == ()


def test_rosetta_share_only_on_arm(make: Callable) -> None:
    cfg = {"vmOpts": {"vz": {"rosetta": {"enabled": True, "binfmt": True}}}}
    host, inst = make(cfg)
    make_bootable(inst)
    assert spec_of(host, inst).shares == (Share("vz-rosetta", None, rosetta=True),)
    intel = HostFacts("Darwin", (15, 5), "x86_64")
    host, inst = make(cfg, facts=intel, name="intel")
    make_bootable(inst)
    assert spec_of(host, inst).shares == ()


def test_nested_virtualization_needs_macos_15(make: Callable) -> None:
    host, inst = make({"nestedVirtualization": True})
    make_bootable(inst)
    assert spec_of(host, inst).platform.nested_virtualization
    with pytest.raises(StartFailed, match="nested virtualization needs macOS 15 or later; this host runs macOS 14.6"):
        spec_of(host, inst, HostFacts("Darwin", (14, 6), "aarch64"))


# -- realize through the fake framework ------------------------------------------------------------


def realized(host: Any, inst: Any, fake: Any) -> dict:
    d = Path(inst.dir)
    spec = spec_of(host, inst)
    return describe(realize(fake, spec, identifier.ensure(d)))


def test_realize_records_every_device(make: Callable, fake: Any, tmp_path: Path) -> None:
    share = tmp_path / "share"
    host, inst = make({"mounts": [{"location": str(share)}], "video": {"display": "vz"}, "audio": {"device": "vz"},
                       "cpus": 2, "memory": "1GiB", "nestedVirtualization": True})
    d = make_bootable(inst, fake)
    cfg = realized(host, inst, fake)
    assert cfg["CPUCount"] == 2 and cfg["memorySize"] == 1 << 30
    assert cfg["bootLoader"]["class"] == "VZEFIBootLoader"
    store = cfg["bootLoader"]["variableStore"]
    assert store["init"] == ["initCreatingVariableStoreAtURL:options:error:", str(d / "vz-efi"), 0]
    assert (d / "vz-efi").exists()
    platform = cfg["platform"]
    assert platform["class"] == "VZGenericPlatformConfiguration" and platform["nestedVirtualizationEnabled"] is True
    assert platform["machineIdentifier"]["init"][0] == "initWithDataRepresentation:"
    (port,) = cfg["serialPorts"]
    assert port["class"] == "VZVirtioConsoleDeviceSerialPortConfiguration"
    assert port["attachment"]["init"] == ["initWithURL:append:error:", str(d / "serialv.log"), False]
    (nic,) = cfg["networkDevices"]
    assert nic["attachment"]["class"] == "VZNATNetworkDeviceAttachment"
    assert nic["MACAddress"]["string"] == mac_address(d)
    disk_dev, cidata = cfg["storageDevices"]
    assert disk_dev["class"] == "VZVirtioBlockDeviceConfiguration"
    assert disk_dev["attachment"]["init"] == [
        "initWithURL:readOnly:cachingMode:synchronizationMode:error:", str(d / "disk"), False,
        fake.Virtualization.VZDiskImageCachingModeCached, fake.Virtualization.VZDiskImageSynchronizationModeFsync]
    assert cidata["attachment"]["init"] == ["initWithURL:readOnly:error:", str(d / "cidata.iso"), True]
    (fs,) = cfg["directorySharingDevices"]
    assert fs["tag"] == mounts.mount_tag(str(share), str(share))
    assert fs["share"]["directory"] == {"class": "VZSharedDirectory", "init": ["initWithURL:readOnly:", str(share), True],
                                        "URL": str(share), "readOnly": True}
    (gpu,) = cfg["graphicsDevices"]
    assert gpu["scanouts"][0]["init"] == ["initWithWidthInPixels:heightInPixels:", 1920, 1200]
    (sound,) = cfg["audioDevices"]
    assert sound["streams"][0]["sink"]["class"] == "VZHostAudioOutputStreamSink"
    assert [x["class"] for x in cfg["entropyDevices"] + cfg["memoryBalloonDevices"] + cfg["socketDevices"]
            + cfg["pointingDevices"] + cfg["keyboards"]] == [
        "VZVirtioEntropyDeviceConfiguration", "VZVirtioTraditionalMemoryBalloonDeviceConfiguration",
        "VZVirtioSocketDeviceConfiguration", "VZUSBScreenCoordinatePointingDeviceConfiguration",
        "VZUSBKeyboardConfiguration"]


def test_realize_linux_boot_and_usb_iso(make: Callable, fake: Any) -> None:
    host, inst = make()
    d = make_bootable(inst, fake)
    (d / "kernel").write_bytes(b"k")
    (d / "kernel.cmdline").write_text("console=hvc0")
    (d / "initrd").write_bytes(b"i")
    (d / "iso").write_bytes(b"\0" * 2048)
    cfg = realized(host, inst, fake)
    boot = cfg["bootLoader"]
    assert boot["init"] == ["initWithKernelURL:", str(d / "kernel")]
    assert boot["commandLine"] == "console=hvc0" and boot["initialRamdiskURL"] == str(d / "initrd")
    assert cfg["storageDevices"][1]["class"] == "VZUSBMassStorageDeviceConfiguration"
    assert cfg["storageDevices"][1]["attachment"]["readOnly"] is True


def test_realize_installs_rosetta_and_caches_through_the_boot_scripts_socket(make: Callable, fake: Any) -> None:
    fake.world.rosetta_availability = 1  # not installed yet
    host, inst = make({"vmOpts": {"vz": {"rosetta": {"enabled": True}}}})
    make_bootable(inst, fake)
    cfg = realized(host, inst, fake)
    (share,) = cfg["directorySharingDevices"]
    assert share["tag"] == "vz-rosetta" and share["share"]["class"] == "VZLinuxRosettaDirectoryShare"
    assert share["share"]["options"] == {"class": "VZLinuxRosettaUnixSocketCachingOptions",
                                         "init": ["initWithPath:error:", config.ROSETTA_CACHE_SOCKET]}
    assert fake.world.calls == ["VZLinuxRosettaDirectoryShare.installRosettaWithCompletionHandler:"]
    script = host.boot_scripts()["boot.Linux/05-rosetta-volume.sh"]
    assert fakevz.guest_rosetta_socket(script) == config.ROSETTA_CACHE_SOCKET  # the guest side makes that socket


def test_realize_refuses_unsupported_nested_virtualization(make: Callable, fake: Any) -> None:
    fake.world.nested_supported = False
    host, inst = make({"nestedVirtualization": True}, name="nested")
    make_bootable(inst, fake)
    with pytest.raises(StartFailed, match="nested virtualization is not supported on this Mac"):
        realized(host, inst, fake)


def test_realize_refuses_a_corrupt_identifier(make: Callable, fake: Any) -> None:
    host, inst = make()
    d = make_bootable(inst, fake)
    (d / "vz-identifier").write_bytes(b"garbage")
    with pytest.raises(StartFailed, match="vz-identifier does not hold a machine identifier"):
        realized(host, inst, fake)


def test_shares_need_their_host_directories(make: Callable, tmp_path: Path) -> None:
    host, inst = make({"mounts": [{"location": str(tmp_path / "new")}]})
    make_bootable(inst)
    assert config.share_directories(spec_of(host, inst)) == [str(tmp_path / "new")]
    assert not os.path.exists(tmp_path / "new")
