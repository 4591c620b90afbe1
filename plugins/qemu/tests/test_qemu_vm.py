"""The qemu driver booting the real test guest (TCG here), in-process and as an external driver.

Each test builds an instance directory by hand as the host would (image, kernel,
kernel.cmdline, initrd, lima-version, cidata.iso), drives it through a DriverHost, and
talks to the guest over SSH on the forwarded port.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from lima_core import pidfile, users
from lima_core.errors import DriverError, StartFailed
from lima_core.external import supervisor
from lima_core.external.client import connect
from lima_core.host import DriverHost
from lima_core.limatype import STATUS_RUNNING, STATUS_STOPPED, Instance
from lima_core.mounts import mount_tag

from lima_driver_qemu.driver import QemuDriver
from qemutest import Guest, free_port, guest_config, new_instance, place_guest, token, write_cidata

pytestmark = pytest.mark.vm
#: generous for slow CI machines; the guest needs about 6 s here
HANDLE_END_TIMEOUT = 30.0


class Rig:
    """One instance directory, its hosts, and the guest behind them."""

    def __init__(self, root: Path, guest: Path, key: Path, driver_bin: Path) -> None:
        self.root, self.guest_files, self.key, self.driver_bin = root, guest, key, driver_bin
        self.dirs: list[Path] = []

    def instance(self, name: str, **config: Any) -> Instance:
        d = self.root / name
        place_guest(d, self.guest_files)
        self.dirs.append(d)
        return new_instance(d, guest_config(**config), free_port())

    def host(self, inst: Instance, mode: str, status: str | None = None) -> DriverHost:
        """A fresh host configured with *inst*, or with a copy in *status* (as a CLI command would make one)."""
        d = Path(inst.dir)
        host = (DriverHost(QemuDriver(), "qemu") if mode == "in-process"
                else connect(str(self.driver_bin / "lima-driver-qemu"), "qemu", d))
        if status is not None:
            inst = inst.copy()
            inst.status = status
        host.configure(inst)
        return host

    def ssh(self, inst: Instance) -> Guest:
        assert inst.config is not None
        return Guest(self.key, inst.ssh_local_port, users.guest_user(inst.config).name)

    def cleanup(self) -> None:
        for d in self.dirs:
            supervisor.stop_servers(d)
            pid_path = d / "qemu.pid"
            proc = pidfile.read(pid_path, expect=str(pid_path)).process
            if proc is not None:
                with contextlib.suppress(psutil.Error):
                    proc.kill()


@pytest.fixture
def rig(short_tmp: Path, guest: Path, ssh_key: Path, driver_bin: Path) -> Iterator[Rig]:
    r = Rig(short_tmp, guest, ssh_key, driver_bin)
    yield r
    r.cleanup()


def boot(rig: Rig, host: DriverHost, inst: Instance) -> tuple[Any, str, float]:
    """configure (done) -> validate, create, create_disk, cidata, start, SSH; (handle, iid, start to SSH login in s)."""
    host.validate()
    host.create()
    host.create_disk()
    host.create()  # a no-op on an existing instance
    iid = write_cidata(host, inst, rig.key)
    started = time.monotonic()
    handle = host.start()
    pid_path = Path(inst.dir) / "qemu.pid"
    rig.ssh(inst).wait(alive=lambda: pidfile.read(pid_path, expect=str(pid_path)).alive)
    return handle, iid, time.monotonic() - started


def ended(handle: Any, timeout: float = HANDLE_END_TIMEOUT) -> list[Any]:
    """The events up to the end of the start stream."""
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = handle.next(timeout=0.5)
        if event is not None:
            events.append(event)
            if event.ended:
                return events
    raise AssertionError(f"the start stream did not end within {timeout:g} s (events: {events})")


def check_guest(g: Guest, iid: str, shares: dict[str, Path]) -> None:
    assert "Linux" in g.run("uname -a").stdout
    assert g.run("cat /run/lima-boot-done").stdout.strip() == iid
    # 9p, mounted from user-data's mounts: rows (cloud-init's fstab; the test guest's init mounts them)
    expected = (shares["ro"] / "hello.txt").read_text().strip()
    assert g.run("cat /mnt/ro/hello.txt").stdout.strip() == expected
    mounts = g.run("grep ' 9p ' /proc/mounts").stdout
    assert re.search(r" /mnt/ro 9p ro[ ,]", mounts) and re.search(r" /mnt/rw 9p rw[ ,]", mounts), mounts
    assert g.run("touch /mnt/ro/nope", user="root", check=False).returncode != 0
    written = token()
    g.run(f"echo {written} > /mnt/rw/from-guest.txt", user="root")
    assert (shares["rw"] / "from-guest.txt").read_text().strip() == written


def share_dirs(root: Path) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    shares = {"ro": root / "share-ro", "rw": root / "share-rw" / "made-by-the-driver"}
    shares["ro"].mkdir()
    (shares["ro"] / "hello.txt").write_text(token() + "\n")
    mounts = [{"location": str(shares["ro"]), "mountPoint": "/mnt/ro"},
              {"location": str(shares["rw"]), "mountPoint": "/mnt/rw", "writable": True}]
    return shares, mounts


def test_in_process_lifecycle_snapshots_and_stop_from_another_process(rig: Rig, record_property: Any) -> None:
    shares, mount_list = share_dirs(rig.root)
    inst = rig.instance("a", mounts=mount_list)
    host = rig.host(inst, "in-process")
    assert inst.config is not None and inst.config.mount_type == "9p"
    handle, iid, to_ssh = boot(rig, host, inst)
    record_property("in_process_boot_to_ssh_s", round(to_ssh, 2))
    assert shares["rw"].is_dir()  # mkdir -p of a missing mount location, as Lima does
    g = rig.ssh(inst)
    check_guest(g, iid, shares)
    args = psutil.Process(int((Path(inst.dir) / "qemu.pid").read_text())).cmdline()
    assert f"mount_tag={mount_tag(str(shares['ro']), '/mnt/ro')}" in " ".join(args)
    with pytest.raises(StartFailed, match="already running"):
        host.start()

    # snapshots while running: HMP over QMP (a host configured with status Running, as `lima snapshot` does)
    snap = rig.host(inst, "in-process", STATUS_RUNNING)
    assert snap.list_snapshots() == ""
    with pytest.raises(DriverError, match="savevm: Error: Migration is disabled when VirtFS export path"):
        snap.create_snapshot(tag="s1")  # QEMU's limit: no savevm while a 9p share is mounted
    g.run("umount /mnt/ro /mnt/rw", user="root")
    g.run("echo before > /tmp/state")
    snap.create_snapshot(tag="s1")
    with pytest.raises(DriverError, match="already exists"):
        snap.create_snapshot(tag="s1")
    listing = snap.list_snapshots()
    header, *rows = listing.strip().splitlines()
    assert header.split()[:2] == ["ID", "TAG"] and [r.split()[1] for r in rows] == ["s1"]
    g.run("echo after > /tmp/state")
    snap.apply_snapshot(tag="s1")
    assert g.run("cat /tmp/state").stdout.strip() == "before"  # memory went back too
    with pytest.raises(DriverError, match="not found"):
        snap.apply_snapshot(tag="nope")
    snap.delete_snapshot(tag="s1")
    assert snap.list_snapshots() == ""

    # stop from another process (the external driver's): power button, handle ends
    other = rig.host(inst, "external")
    started = time.monotonic()
    other.stop()
    record_property("stop_from_external_s", round(time.monotonic() - started, 2))
    events = ended(handle)
    assert [e.error for e in events] == [None], events  # exit status 0: a clean power-off
    assert not (Path(inst.dir) / "qemu.pid").exists()

    # snapshots while stopped: qemu-img
    off = rig.host(inst, "in-process", STATUS_STOPPED)
    off.create_snapshot(tag="cold")
    assert "cold" in off.list_snapshots()
    off.apply_snapshot(tag="cold")
    off.delete_snapshot(tag="cold")
    assert off.list_snapshots() == ""
    with pytest.raises(DriverError, match="not found"):
        off.delete_snapshot(tag="cold")
    off.stop()  # nothing to stop: a no-op


def test_external_lifecycle_with_vnc_and_graceful_stop(rig: Rig, record_property: Any) -> None:
    shares, mount_list = share_dirs(rig.root)
    inst = rig.instance("b", mounts=mount_list, video={"display": "vnc"})
    host = rig.host(inst, "external")
    handle, iid, to_ssh = boot(rig, host, inst)
    record_property("external_boot_to_ssh_s", round(to_ssh, 2))
    check_guest(rig.ssh(inst), iid, shares)

    host.change_display_password(password="abcd1234")
    port = host.display_connection()
    assert port.isdigit() and 5900 <= int(port) <= 5909
    d = Path(inst.dir)
    (d / "vncdisplay").write_text(f"127.0.0.1:{int(port) - 5900}")  # the host agent writes these
    (d / "vncpassword").write_text("abcd1234")

    rig.ssh(inst).run("umount /mnt/ro /mnt/rw", user="root")  # savevm refuses while 9p shares are mounted
    snap = rig.host(inst, "external", STATUS_RUNNING)
    snap.create_snapshot(tag="live")
    assert "live" in snap.list_snapshots()
    snap.delete_snapshot(tag="live")

    started = time.monotonic()
    host.stop()
    record_property("external_stop_s", round(time.monotonic() - started, 2))
    assert [e.error for e in ended(handle)] == [None]
    assert not any((d / f).exists() for f in ("qemu.pid", "vncdisplay", "vncpassword"))


def test_cancelled_start_kills_qemu_and_stop_cleans_up(rig: Rig) -> None:
    inst = rig.instance("c")
    host = rig.host(inst, "in-process")
    host.create_disk()
    write_cidata(host, inst, rig.key)
    handle = host.start()
    pid_path = Path(inst.dir) / "qemu.pid"
    assert pidfile.read(pid_path, expect=str(pid_path)).alive
    handle.cancel()  # the host went away without stop (Lima binds qemu to the Start call)
    events = ended(handle, 10)
    assert "qemu was killed by SIGKILL" in (events[0].error or "") and events[-1].ended
    host.stop()  # qemu is gone; its pid file is removed
    assert not pid_path.exists()


def test_start_failure_is_reported_with_qemus_message(rig: Rig) -> None:
    inst = rig.instance("d", vmOpts={"qemu": {"cpuType": {"x86_64": "max,+no-such-flag"}}})
    host = rig.host(inst, "in-process")
    host.create_disk()
    write_cidata(host, inst, rig.key)
    with pytest.raises(StartFailed, match=r"qemu exited with status 1 at startup: .*no-such-flag"):
        host.start()
    assert "no-such-flag" in (Path(inst.dir) / "qemu.stderr.log").read_text()
