"""The qemu driver's suspend and resume (lima-core's extension): the migration stream, against the real test
guest under TCG, in-process and external; and the checks that keep a saved state from being resumed wrongly.

The guest work around it (unmounting 9p shares, the clock) is lima-core's; here the shares are unmounted by
hand. The whole path through `lima`: tests/e2e/test_suspend_resume.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lima_core import pidfile, suspended
from lima_core.errors import DriverError, StartFailed
from lima_core.limatype import STATUS_RUNNING, STATUS_SUSPENDED

from lima_driver_qemu import cmdline, savedstate
from qemutest import free_port
from test_qemu_vm import Rig, boot, ended, share_dirs

pytestmark = pytest.mark.vm


@pytest.fixture
def rig(short_tmp: Path, guest: Path, ssh_key: Path, driver_bin: Path) -> Iterator[Rig]:
    r = Rig(short_tmp, guest, ssh_key, driver_bin)
    yield r
    r.cleanup()


def qemu_alive(d: Path) -> bool:
    return pidfile.read(d / "qemu.pid", expect=str(d / "qemu.pid")).alive


@pytest.mark.parametrize("mode", ["in-process", "external"])
def test_suspend_and_resume_keep_memory_and_processes(rig: Rig, mode: str, record_property: Any) -> None:
    _shares, mount_list = share_dirs(rig.root)
    inst = rig.instance("s", mounts=mount_list)
    d = Path(inst.dir)
    host = rig.host(inst, mode)
    handle, iid, _ = boot(rig, host, inst)
    g = rig.ssh(inst)

    # QEMU cannot save a VM while a 9p share is mounted: the VM runs on, not left paused.
    with pytest.raises(DriverError, match="QEMU cannot save this VM: Migration is disabled when VirtFS"):
        host.suspend()
    assert g.run("echo alive").stdout.strip() == "alive"
    assert not savedstate.exists(d)

    g.run("umount /mnt/ro /mnt/rw", user="root")
    g.run("echo kept > /tmp/state")
    sleeper = g.run("sleep 100000 >/dev/null 2>&1 </dev/null & echo $!").stdout.strip()
    started = time.monotonic()
    size = host.suspend()
    record_property(f"{mode}_suspend_s", round(time.monotonic() - started, 2))
    assert size == (d / "qemu.savedstate").stat().st_size > 1 << 20
    assert [e.error for e in ended(handle)] == [None]  # QEMU quit cleanly
    assert not qemu_alive(d)
    saved = json.loads((d / "qemu.savedstate.json").read_text())
    assert saved["argv"][0].endswith("qemu-system-x86_64") and "-incoming" not in saved["argv"]
    assert saved["stateBytes"] == size and saved["files"]["disk"][0] > 0

    # While suspended the disk stays as it was saved.
    off = rig.host(inst, mode, STATUS_SUSPENDED)
    with pytest.raises(DriverError, match="is suspended, and its disk must stay as it was saved"):
        off.create_snapshot(tag="x")
    assert off.list_snapshots() == ""

    # Resume on another SSH port (the old one may be taken by then).
    moved = inst.copy()
    moved.ssh_local_port = free_port()
    again = rig.host(moved, mode)
    started = time.monotonic()
    handle = again.resume()
    g2 = rig.ssh(moved)
    g2.wait(alive=lambda: qemu_alive(d))
    record_property(f"{mode}_resume_to_ssh_s", round(time.monotonic() - started, 2))
    assert g2.run("cat /tmp/state").stdout.strip() == "kept"
    assert g2.run(f"tr '\\0' ' ' </proc/{sleeper}/cmdline").stdout.strip() == "sleep 100000"
    assert g2.run("cat /run/lima-boot-done").stdout.strip() == iid  # the same boot
    assert not savedstate.exists(d)  # spent once the VM runs
    with pytest.raises(StartFailed, match="already running"):
        again.resume()

    running = rig.host(moved, mode, STATUS_RUNNING)
    running.stop()
    assert [e.error for e in ended(handle)] == [None]


def test_a_failed_resume_leaves_the_saved_state_and_disk_untouched(rig: Rig) -> None:
    inst = rig.instance("f")
    d = Path(inst.dir)
    host = rig.host(inst, "in-process")
    handle, _iid, _ = boot(rig, host, inst)
    host.suspend()
    ended(handle)
    state, info = (d / "qemu.savedstate").read_bytes(), (d / "qemu.savedstate.json").read_text()

    def untouched() -> None:
        assert (d / "qemu.savedstate").read_bytes() == state
        assert (d / "qemu.savedstate.json").read_text() == info
        assert not qemu_alive(d)

    # Another QEMU version cannot load the stream: refused before it reads it.
    data = json.loads(info)
    (d / "qemu.savedstate.json").write_text(json.dumps({**data, "qemuVersion": "1.0.0"}))
    with pytest.raises(StartFailed, match=r"saved by QEMU 1\.0\.0; this is QEMU \d+\.\d+\.\d+, which cannot load"):
        rig.host(inst, "in-process").resume()
    assert not qemu_alive(d)
    (d / "qemu.savedstate.json").write_text(info)

    # A stream QEMU cannot load: QEMU's own reason, and everything as it was.
    (d / "qemu.savedstate").write_bytes(state[: len(state) // 2])
    with pytest.raises(StartFailed, match="cannot resume the VM: .*(qemu: .*)"):
        rig.host(inst, "in-process").resume()
    assert (d / "qemu.savedstate").stat().st_size == len(state) // 2 and not qemu_alive(d)
    (d / "qemu.savedstate").write_bytes(state)
    untouched()

    # A disk touched while suspended is refused: the saved memory would corrupt it.
    disk_stat = (d / "disk").stat()
    with open(d / "disk", "r+b") as f:
        f.seek(0, 2)
        f.write(b"\0")
    with pytest.raises(StartFailed, match="disk changed since the VM was saved"):
        rig.host(inst, "in-process").resume()
    untouched()
    with open(d / "disk", "r+b") as f:
        f.truncate(disk_stat.st_size)
    os.utime(d / "disk", ns=(disk_stat.st_atime_ns, disk_stat.st_mtime_ns))

    # As it was, it resumes; stop discards nothing then (the VM runs), and later stop of a
    # suspended VM discards its state.
    handle = rig.host(inst, "in-process").resume()
    rig.ssh(inst).wait(alive=lambda: qemu_alive(d))
    host = rig.host(inst, "in-process", STATUS_RUNNING)
    host.suspend()
    ended(handle)
    assert savedstate.exists(d)
    rig.host(inst, "in-process", STATUS_SUSPENDED).stop()
    assert not savedstate.exists(d)
    with pytest.raises(StartFailed, match="has no saved state to resume"):
        rig.host(inst, "in-process").resume()


# -- without QEMU -------------------------------------------------------------------------------------


def test_with_ssh_port_moves_only_the_ssh_forward() -> None:
    args = ["-m", "512", "-netdev", "user,id=net0,net=192.168.5.0/24,dhcpstart=192.168.5.15,"
            "hostfwd=tcp:127.0.0.1:60022-:22", "-device", "virtio-net-pci,netdev=net0"]
    moved = cmdline.with_ssh_port(args, 41234)
    assert moved[3] == "user,id=net0,net=192.168.5.0/24,dhcpstart=192.168.5.15,hostfwd=tcp:127.0.0.1:41234-:22"
    assert moved[:3] == args[:3] and moved[4:] == args[4:] and args[3].endswith("60022-:22")
    assert cmdline.with_ssh_port(["-netdev", "user,id=net0,hostfwd=tcp:[::1]:2222-:22"], 5)[1].endswith("[::1]:5-:22")
    with pytest.raises(ValueError, match="no SSH forward"):
        cmdline.with_ssh_port(["-netdev", "user,id=net0"], 5)


def test_saved_state_record_is_checked(tmp_path: Path) -> None:
    assert savedstate.read(tmp_path) is None and not savedstate.exists(tmp_path)
    (tmp_path / "qemu.savedstate.json").write_text("{broken")
    with pytest.raises(StartFailed, match="cannot be read"):
        savedstate.read(tmp_path)
    (tmp_path / "disk").write_bytes(b"d" * 10)
    saved = savedstate.Saved(argv=["qemu"], version="7.2.0", files=suspended.file_identity(tmp_path), state_bytes=1,
                             saved_at="then")
    (tmp_path / "qemu.savedstate.json").write_text(json.dumps(saved.to_json()))
    assert savedstate.read(tmp_path) is None  # a record without its stream is no saved state
    (tmp_path / "qemu.savedstate").write_bytes(b"s")
    assert savedstate.read(tmp_path) == saved
    savedstate.check(saved, tmp_path)
    (tmp_path / "cidata.iso").write_bytes(b"new")
    with pytest.raises(StartFailed, match="^cidata.iso changed since the VM was saved"):
        savedstate.check(saved, tmp_path)
    assert savedstate.discard(tmp_path) and not savedstate.exists(tmp_path)
    assert not savedstate.discard(tmp_path)
