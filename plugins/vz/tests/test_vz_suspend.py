"""vz's suspend and resume (lima-core's extension; Virtualization.framework's save and restore, macOS 14),
against the fake framework: the state survives, the calls come in the order and states the framework allows,
and a failure on either side leaves the VM, or the saved state and the disk, as they were."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lima_driver_vz import running
from lima_driver_vz.hostinfo import HostFacts
from lima_driver_vz.testing import fakevz
from vz_helpers import make_bootable

from lima_core.errors import DriverError, StartFailed


def suspended_vm(make: Callable, fake: Any, **kw: Any) -> tuple[Any, Any, Path, str]:
    """A VM started then suspended: (host, instance, dir, the guest's memory token)."""
    host, inst = make(**kw)
    d = make_bootable(inst, fake)
    handle = host.start()
    (machine,) = fake.world.machines
    memory = machine.memory
    assert memory
    size = host.suspend()
    event = handle.next(timeout=5)
    assert event is not None and event.ended and event.error is None  # the VM ended without an error
    assert size == (d / "vz.savedstate").stat().st_size > 0
    return host, inst, d, memory


def test_suspend_then_resume_restores_the_same_vm(make: Callable, fake: Any) -> None:
    host, inst, d, memory = suspended_vm(make, fake)
    first = fake.world.machines[0]
    assert first._state == fakevz.STOPPED  # forced to stop once its state was saved
    assert not (d / "vz.pid").exists()
    record = json.loads((d / "vz.savedstate.json").read_text())
    assert record["files"]["disk"][0] == (d / "disk").stat().st_size

    handle = host.resume()
    second = fake.world.machines[-1]
    assert second is not first
    assert second.restored_from == str(d / "vz.savedstate") and second.memory == memory
    assert second._state == fakevz.RUNNING
    assert (d / "vz.pid").exists()
    assert not (d / "vz.savedstate").exists() and not (d / "vz.savedstate.json").exists()
    assert handle.next(timeout=0.2) is None  # running
    host.stop()
    assert handle.next(timeout=5).ended


def test_stop_discards_the_saved_state_and_start_boots_afresh(make: Callable, fake: Any) -> None:
    host, inst, d, memory = suspended_vm(make, fake)
    host.stop()
    assert not (d / "vz.savedstate").exists() and not (d / "vz.savedstate.json").exists()
    with pytest.raises(StartFailed, match="has no saved state to resume"):
        host.resume()
    handle = host.start()
    assert fake.world.machines[-1].restored_from is None and fake.world.machines[-1].memory != memory
    host.stop()
    handle.next(timeout=5)


def test_a_start_discards_a_stale_saved_state(make: Callable, fake: Any) -> None:
    host, inst, d, _ = suspended_vm(make, fake)
    handle = host.start()
    assert not (d / "vz.savedstate").exists()
    host.stop()
    handle.next(timeout=5)


def test_a_refused_save_leaves_the_vm_running(make: Callable, fake: Any) -> None:
    host, inst = make()
    d = make_bootable(inst, fake)
    handle = host.start()
    (machine,) = fake.world.machines
    fake.world.save_error = "The virtual machine state could not be saved: no space"
    with pytest.raises(DriverError, match="vz could not save the VM's state: .*no space"):
        host.suspend()
    assert machine._state == fakevz.RUNNING  # paused for the save, resumed after
    assert not list(d.glob("vz.savedstate*"))
    fake.world.save_error = None
    fake.world.save_restore_unsupported = "The configuration has a device that cannot be saved."
    with pytest.raises(DriverError, match="vz cannot save this VM: The configuration has a device"):
        host.suspend()
    assert machine._state == fakevz.RUNNING and handle.next(timeout=0.2) is None
    host.stop()


def test_a_failed_restore_keeps_the_saved_state_and_the_disk(make: Callable, fake: Any, tmp_path: Path) -> None:
    host, inst, d, memory = suspended_vm(make, fake)
    state = (d / "vz.savedstate").read_bytes()

    # Another configuration (more memory, edited while suspended) is refused by the framework; the VM it
    # made is stopped and its disks released.
    bigger, _ = make({"memory": "2GiB"})
    with pytest.raises(StartFailed, match="incompatible with the virtual machine configuration"):
        bigger.resume()
    assert fake.world.machines[-1]._state == fakevz.STOPPED and not fake.world.machines[-1]._locks
    assert (d / "vz.savedstate").read_bytes() == state and not (d / "vz.pid").exists()

    # A disk changed meanwhile is refused before anything runs.
    with open(d / "disk", "ab") as f:
        f.write(b"\0" * 512)
    with pytest.raises(StartFailed, match="disk changed since the VM was saved"):
        host.resume()
    assert (d / "vz.savedstate").read_bytes() == state


def test_suspend_needs_macos_14(make: Callable, fake: Any) -> None:
    ventura = HostFacts(system="Darwin", macos=(13, 6), arch="aarch64")
    old = fakevz.bindings(fakevz.World(macos=(13, 6)))
    host, inst = make(facts=ventura, framework=old)
    make_bootable(inst, old)
    handle = host.start()
    with pytest.raises(DriverError, match=r"vz can suspend a VM on macOS 14 or later; this host runs macOS 13\.6"):
        host.suspend()
    with pytest.raises(StartFailed, match="vz can resume a VM on macOS 14 or later"):
        host.resume()
    # The fake Mac lacks the selectors too, as pyobjc on macOS 13 does, and the driver's Machine says so.
    (machine,) = old.world.machines
    with pytest.raises(AttributeError):
        _ = machine.saveMachineStateToURL_completionHandler_
    vm = running.lookup(Path(inst.dir))
    assert vm is not None
    with pytest.raises(DriverError, match="has no saveMachineStateToURL_completionHandler_ .*needs macOS 14"):
        vm.machine.save_state(str(Path(inst.dir) / "x"))
    with pytest.raises(DriverError, match="has no validateSaveRestoreSupport .*needs macOS 14"):
        vm.machine.validate_save_restore()
    host.stop()
    handle.next(timeout=5)


def test_the_fake_allows_save_and_restore_only_where_the_framework_does(fake: Any, make: Callable) -> None:
    host, inst = make()
    make_bootable(inst, fake)
    handle = host.start()
    (machine,) = fake.world.machines
    url = fake.Foundation.NSURL.fileURLWithPath_(str(Path(inst.dir) / "x"))
    saved: list[Any] = []
    restored: list[Any] = []
    # Each completion handler runs on its own; their order is not the order of the calls.
    machine._queue.run(lambda: machine.saveMachineStateToURL_completionHandler_(url, saved.append))
    machine._queue.run(lambda: machine.restoreMachineStateFromURL_completionHandler_(url, restored.append))
    deadline = time.monotonic() + 2
    while not (saved and restored) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.localizedDescription() for e in saved] == ["the VM must be paused to save its state"]
    assert [e.localizedDescription() for e in restored] == ["the VM must be stopped to restore a saved state"]
    with pytest.raises(AssertionError, match="outside its dispatch queue"):
        machine.canPause()
    host.stop()
    handle.next(timeout=5)
