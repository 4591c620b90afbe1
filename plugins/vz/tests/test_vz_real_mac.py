"""What a real Mac refuses, through the strict fake: one test per item of issue 22 (vz).

Each test shows both sides: the fake refuses what Virtualization.framework
refuses (so a driver bug would fail here as on a Mac), and the driver does
not ask for it, or says in one line what to change.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lima_driver_vz import config, datadisks, identifier
from lima_driver_vz.framework import configuration
from lima_driver_vz.hostinfo import HostFacts
from lima_driver_vz.testing import fakevz
from lima_driver_vz.testing.fakevz import describe
from vz_helpers import make_bootable

from lima_core.errors import HostUnsupported, StartFailed, ValidationError

ROSETTA = {"vmOpts": {"vz": {"rosetta": {"enabled": True, "binfmt": True}}}}


def mac(macos: tuple[int, ...] = (15, 5), arch: str = "aarch64", **world: Any) -> tuple[HostFacts, Any]:
    """A described Mac and the fake framework of that Mac."""
    return HostFacts("Darwin", macos, arch), fakevz.bindings(fakevz.World(macos=macos, arch=arch, **world))


def realized(host: Any, inst: Any, fake: Any) -> dict:
    spec = config.build(inst, host.driver.facts, host.driver.options)
    return describe(configuration.realize(fake, spec, identifier.ensure(Path(inst.dir))))


# -- the entitlement ------------------------------------------------------------------------------------


def test_the_framework_refuses_a_process_without_the_entitlement() -> None:
    _, fake = mac(entitled=False)
    ok, error = fake.Virtualization.VZVirtualMachineConfiguration.alloc().init().validateWithError_(None)
    assert ok is False and "com.apple.security.virtualization" in error.localizedDescription()


def test_without_the_entitlement_the_driver_says_what_to_run(make: Callable) -> None:
    facts, fake = mac(entitled=False)
    host, inst = make(facts=facts, framework=fake)
    make_bootable(inst, fake)
    for hook in (host.check_host, host.start):
        with pytest.raises(HostUnsupported) as err:
            hook()
        message = err.value.message
        assert "\n" not in message
        assert "lacks the com.apple.security.virtualization entitlement" in message
        assert "run `lima-driver-vz --entitle` once, then set LIMA_EXTERNAL_DRIVERS=vz" in message
    assert fake.world.machines == []  # refused before any VM was made


# -- CPU and memory ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cpus, memory, problem", [
    (9, 1 << 30, "CPU count 9 is outside 1...8"),
    (2, (1 << 30) + 1000, "multiple of 1 MB"),
    (2, 64 << 20, "outside"),
    (2, 32 << 30, "outside"),
])
def test_the_framework_checks_cpu_and_memory(cpus: int, memory: int, problem: str) -> None:
    _, fake = mac()
    vz = fake.Virtualization
    cfg = vz.VZVirtualMachineConfiguration.alloc().init()
    cfg.setBootLoader_(vz.VZEFIBootLoader.alloc().init())
    cfg.setPlatform_(vz.VZGenericPlatformConfiguration.alloc().init())
    cfg.setCPUCount_(cpus)
    cfg.setMemorySize_(memory)
    ok, error = cfg.validateWithError_(None)
    assert not ok and problem in error.localizedDescription()


@pytest.mark.parametrize("cfg, message", [
    ({"cpus": 12}, "cpus: 12 is outside what Virtualization.framework allows on this Mac (1 to 8)"),
    ({"memory": "64GiB"}, "memory: 64GiB is outside what Virtualization.framework allows on this Mac "
                          "(128MiB to 16GiB)"),
])
def test_the_driver_names_the_setting_outside_this_macs_limits(make: Callable, cfg: dict, message: str) -> None:
    facts, fake = mac()
    host, inst = make(cfg, facts=facts, framework=fake)
    make_bootable(inst, fake)
    with pytest.raises(StartFailed) as err:
        host.start()
    assert message in err.value.message


def test_memory_must_be_whole_mib(make: Callable) -> None:
    host, _ = make({"memory": "1.3GiB"})
    with pytest.raises(ValidationError) as err:
        host.validate()
    assert err.value.message == ("memory: 1.3GiB is not a whole number of MiB, which Virtualization.framework "
                                 "requires; use e.g. 1331MiB")


# -- the EFI variable store ------------------------------------------------------------------------------


def test_the_framework_does_not_overwrite_a_variable_store(tmp_path: Path) -> None:
    _, fake = mac()
    vz, url = fake.Virtualization, fake.Foundation.NSURL.fileURLWithPath_(str(tmp_path / "vz-efi"))
    assert vz.VZEFIVariableStore.alloc().initCreatingVariableStoreAtURL_options_error_(url, 0, None)[0] is not None
    store, error = vz.VZEFIVariableStore.alloc().initCreatingVariableStoreAtURL_options_error_(url, 0, None)
    assert store is None and "already exists" in error.localizedDescription()
    allow = vz.VZEFIVariableStoreInitializationOptionAllowOverwrite
    assert vz.VZEFIVariableStore.alloc().initCreatingVariableStoreAtURL_options_error_(url, allow, None)[0]


def test_the_driver_creates_the_store_once_and_then_loads_it(make: Callable) -> None:
    facts, fake = mac()
    host, inst = make(facts=facts, framework=fake)
    d = make_bootable(inst, fake)
    first = realized(host, inst, fake)["bootLoader"]["variableStore"]["init"]
    assert first[0] == "initCreatingVariableStoreAtURL:options:error:" and (d / "vz-efi").exists()
    # A spec made before the file appeared (two starts racing, or an old spec) must not ask to create it again.
    spec = config.build(inst, facts, host.driver.options)
    spec = type(spec)(**{**spec.__dict__, "boot": config.EFIBoot(str(d / "vz-efi"), create=True)})
    again = describe(configuration.realize(fake, spec, identifier.ensure(d)))["bootLoader"]["variableStore"]["init"]
    assert again == ["initWithURL:", str(d / "vz-efi")]


# -- Rosetta ---------------------------------------------------------------------------------------------------


def test_rosetta_classes_exist_on_arm64_only() -> None:
    assert hasattr(mac(arch="aarch64")[1].Virtualization, "VZLinuxRosettaDirectoryShare")
    intel = mac(arch="x86_64")[1].Virtualization
    for name in ("VZLinuxRosettaDirectoryShare", "VZLinuxRosettaUnixSocketCachingOptions",
                 "VZLinuxRosettaAbstractSocketCachingOptions"):
        assert not hasattr(intel, name)


def test_on_an_intel_mac_rosetta_is_a_warning_and_never_touched(make: Callable,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    facts, fake = mac(arch="x86_64")
    host, inst = make(ROSETTA, facts=facts, framework=fake)
    make_bootable(inst, fake)
    with caplog.at_level(logging.WARNING, "lima_driver_vz"):
        host.validate()
    assert "ignoring vmOpts.vz.rosetta: Rosetta for Linux needs a Mac with Apple silicon" in caplog.text
    host.start()
    assert "directorySharingDevices" not in describe(fake.world.machines[0].configuration()).keys()


def test_rosettas_cache_reaches_the_socket_the_boot_script_makes(make: Callable) -> None:
    """The caching option is checked against the guest side: the path rosettad is linked to by the driver's own
    boot script. (An abstract socket named "rosetta", as before, never met it.)"""
    facts, fake = mac((14, 0))
    host, inst = make(ROSETTA, facts=facts, framework=fake)
    script = host.boot_scripts()["boot.Linux/05-rosetta-volume.sh"]
    fake.world.rosetta_guest_socket = fakevz.guest_rosetta_socket(script)
    make_bootable(inst, fake)
    host.start()
    (machine,) = fake.world.machines
    assert machine.rosetta_cache == "connected"


def test_the_fake_tells_a_cache_socket_the_guest_does_not_listen_on() -> None:
    _, fake = mac()
    options = fake.Virtualization.VZLinuxRosettaAbstractSocketCachingOptions.alloc().initWithName_error_(
        "rosetta", None)[0]
    assert fakevz._rosetta_cache(options, "/run/rosettad/rosetta.sock").startswith(
        "unreachable: Rosetta asks @rosetta, rosettad listens on /run/rosettad/rosetta.sock")
    too_long = "/" + "x" * 200
    options, error = fake.Virtualization.VZLinuxRosettaUnixSocketCachingOptions.alloc().initWithPath_error_(
        too_long, None)
    assert options is None and "maximum length" in error.localizedDescription()


def test_on_macos_13_rosetta_has_no_cache_options_and_still_boots(make: Callable) -> None:
    facts, fake = mac((13, 6))
    assert not hasattr(fake.Virtualization, "VZLinuxRosettaUnixSocketCachingOptions")
    host, inst = make(ROSETTA, facts=facts, framework=fake)
    make_bootable(inst, fake)
    host.start()
    (machine,) = fake.world.machines
    (share,) = describe(machine.configuration())["directorySharingDevices"]
    assert share["share"]["class"] == "VZLinuxRosettaDirectoryShare" and "options" not in share["share"]
    assert machine.rosetta_cache == "not configured"


@pytest.mark.parametrize("world, why", [
    ({"rosetta_availability": 0}, "Virtualization.framework reports it as not supported on this Mac"),
    ({"rosetta_availability": 1, "rosetta_install_error": "The user declined"},
     "it could not be installed: The user declined"),
])
def test_rosetta_unavailable_warns_and_boots_without_it(make: Callable, caplog: pytest.LogCaptureFixture,
                                                        world: dict, why: str) -> None:
    facts, fake = mac(**world)
    host, inst = make(ROSETTA, facts=facts, framework=fake)
    make_bootable(inst, fake)
    with caplog.at_level(logging.WARNING, "lima_driver_vz"):
        handle = host.start()
    assert f"Unable to configure Rosetta: {why}" in caplog.text and "the VM boots without it" in caplog.text
    (machine,) = fake.world.machines
    assert machine.rosetta_cache is None  # no Rosetta share at all
    assert handle.next(timeout=0.2) is None  # running


def test_the_boot_script_skips_rosetta_the_host_did_not_share(tmp_path: Path, make: Callable) -> None:
    import subprocess

    host, _ = make(ROSETTA)
    script = tmp_path / "rosetta.sh"
    script.write_bytes(host.boot_scripts()["boot.Linux/05-rosetta-volume.sh"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in (("mount", "exit 32"), ("mkdir", "exit 0"), ("grep", "exit 1")):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LIMA_CIDATA_ROSETTA_ENABLED": "true"}
    out = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "the host did not share Rosetta" in out.stderr


# -- the macOS 13 path --------------------------------------------------------------------------------------


def test_macos_13_has_no_automatic_display_reconfiguration(make: Callable) -> None:
    facts, fake = mac((13, 6))
    host, inst = make({"video": {"display": "vz"}}, facts=facts, framework=fake)
    make_bootable(inst, fake)
    host.start()
    view_cls = fake.Virtualization.VZVirtualMachineView
    assert not hasattr(view_cls.alloc().initWithFrame_((0, 0, 1, 1)), "setAutomaticallyReconfiguresDisplay_")
    assert hasattr(mac((14, 0))[1].Virtualization.VZVirtualMachineView.alloc().initWithFrame_((0, 0, 1, 1)),
                   "setAutomaticallyReconfiguresDisplay_")
    seen = _run_gui_until_shown(host, fake)
    assert "automaticallyReconfiguresDisplay" not in seen["view"].props and seen["key"]


def test_macos_14_reconfigures_the_display_automatically(make: Callable) -> None:
    facts, fake = mac((14, 0))
    host, inst = make({"video": {"display": "vz"}}, facts=facts, framework=fake)
    make_bootable(inst, fake)
    host.start()
    assert _run_gui_until_shown(host, fake)["view"].props["automaticallyReconfiguresDisplay"] is True


def test_nested_virtualization_is_missing_before_macos_15() -> None:
    _, fake = mac((14, 6))
    cls = fake.Virtualization.VZGenericPlatformConfiguration
    assert not hasattr(cls, "isNestedVirtualizationSupported")
    assert not hasattr(cls.alloc().init(), "setNestedVirtualizationEnabled_")


# -- the window -------------------------------------------------------------------------------------------------


def _run_gui_until_shown(host: Any, fake: Any) -> dict:
    """run_gui on this (main) thread; another thread records the window's state once shown, then stops the VM."""
    seen: dict = {}
    windows: list[Any] = []
    window_cls = fake.AppKit.NSWindow  # this fake's own subclass: patching it touches no other test
    original = window_cls.makeKeyAndOrderFront_

    def record(self: Any, sender: Any) -> None:
        original(self, sender)
        windows.append(self)

    window_cls.makeKeyAndOrderFront_ = record

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not windows and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # a few event-loop turns
        window = windows[-1]
        seen.update(key=window.isKeyWindow(), responder=window.firstResponder(),
                    view=window.props["contentView"])
        host.stop()

    t = threading.Thread(target=watch)
    t.start()
    host.run_gui()
    t.join()
    return seen


def test_the_window_becomes_key_and_its_view_takes_the_keys(make: Callable) -> None:
    facts, fake = mac()
    host, inst = make({"video": {"display": "vz"}}, facts=facts, framework=fake)
    make_bootable(inst, fake)
    host.start()
    seen = _run_gui_until_shown(host, fake)
    assert seen["key"], "the window never became key: AppKit activates an app only after finishLaunching"
    assert seen["responder"] is seen["view"]
    assert fake.world.application.launched == 1


def test_without_finish_launching_no_window_becomes_key() -> None:
    """The fake's side: an app that did not finish launching cannot be activated."""
    _, fake = mac()
    app = fake.AppKit.NSApplication.sharedApplication()
    app.setActivationPolicy_(0)
    window = fake.AppKit.NSWindow.alloc().initWithContentRect_styleMask_backing_defer_((0, 0, 1, 1), 15, 2, False)
    window.makeKeyAndOrderFront_(None)
    app.activateIgnoringOtherApps_(True)
    assert not window.isKeyWindow()
    app.finishLaunching()
    app.activateIgnoringOtherApps_(True)
    assert window.isKeyWindow()


# -- disk images ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content, problem", [
    (b"QFI\xfb" + b"\0" * 508, "format (qcow2) is not supported"),
    (b"\0" * 1000, "not a multiple of the 512-byte block size"),
    (b"shdw" + b"\0" * 508, "ASIF) is not supported before macOS 26"),
])
def test_the_framework_attaches_raw_and_asif_images_only(tmp_path: Path, content: bytes, problem: str) -> None:
    _, fake = mac()
    (tmp_path / "img").write_bytes(content)
    url = fake.Foundation.NSURL.fileURLWithPath_(str(tmp_path / "img"))
    attachment, error = fake.Virtualization.VZDiskImageStorageDeviceAttachment.alloc().initWithURL_readOnly_error_(
        url, False, None)
    assert attachment is None and problem in error.localizedDescription()


def test_asif_attaches_from_macos_26(tmp_path: Path, make: Callable) -> None:
    (tmp_path / "img").write_bytes(b"shdw" + b"\0" * 508)
    _, fake = mac((26, 0))
    url = fake.Foundation.NSURL.fileURLWithPath_(str(tmp_path / "img"))
    assert fake.Virtualization.VZDiskImageStorageDeviceAttachment.alloc().initWithURL_readOnly_error_(
        url, False, None)[0] is not None
    facts, fake = mac((15, 5))
    host, inst = make(facts=facts, framework=fake)
    d = make_bootable(inst, fake)
    (d / "disk").write_bytes(b"shdw" + b"\0" * 508)
    with pytest.raises(StartFailed, match="is an ASIF image, which Virtualization.framework reads from macOS 26 on"):
        host.start()


def test_a_disk_that_is_not_whole_sectors_is_refused_with_the_fix(make: Callable) -> None:
    facts, fake = mac()
    host, inst = make(facts=facts, framework=fake)
    d = make_bootable(inst, fake)
    (d / "disk").write_bytes(b"\0" * 1000)
    with pytest.raises(StartFailed, match=f"not a multiple of 512.*truncate -s 1024 {d / 'disk'}"):
        host.start()


def test_the_framework_holds_disks_for_exclusive_use(tmp_path: Path) -> None:
    """Two VMs (even in one process) cannot both attach a writable image; read-only ones share."""
    facts, fake = mac()
    from lima_driver_vz.framework.machine import Machine

    image = tmp_path / "shared.img"
    image.write_bytes(b"\0" * 4096)

    def vm(read_only: bool) -> Any:
        vz = fake.Virtualization
        url = fake.Foundation.NSURL.fileURLWithPath_(str(image))
        cfg = vz.VZVirtualMachineConfiguration.alloc().init()
        attachment = vz.VZDiskImageStorageDeviceAttachment.alloc().initWithURL_readOnly_error_(url, read_only,
                                                                                                None)[0]
        cfg.setStorageDevices_([vz.VZVirtioBlockDeviceConfiguration.alloc().initWithAttachment_(attachment)])
        return Machine(fake, cfg, "test")

    first = vm(False)
    first.start()
    with pytest.raises(StartFailed, match="is in use by another virtual machine"):
        vm(False).start()
    with pytest.raises(StartFailed, match="is in use by another virtual machine"):
        vm(True).start()
    first.request_stop()
    deadline = time.monotonic() + 5
    while first.state() != 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    vm(True).start()
    vm(True).start()  # read-only attachments share


def test_the_driver_refuses_a_disk_another_vm_holds_before_starting(make: Callable) -> None:
    facts, fake = mac()
    host, inst = make(facts=facts, framework=fake)
    d = make_bootable(inst, fake)
    holder = os.open(d / "disk", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as a VM in another process holds it
    try:
        with pytest.raises(StartFailed, match=f"{d / 'disk'} is in use by another process"):
            host.start()
    finally:
        os.close(holder)
    assert fake.world.machines == [] and not (d / "vz.pid").exists()
    host.start()


def test_an_additional_disk_listed_twice_is_refused(make: Callable) -> None:
    datadisks.path("data").parent.mkdir(parents=True)
    datadisks.path("data").write_bytes(b"\0" * 512)
    host, _ = make({"additionalDisks": ["data", {"name": "data"}]})
    with pytest.raises(ValidationError, match="additionalDisks: 'data' is listed more than once"):
        host.validate()
