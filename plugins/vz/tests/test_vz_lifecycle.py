"""start, stop, the guest agent, SSH forwarding, the GUI and screenshots, against the fake framework."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lima_driver_vz import datadisks, driver, framework, sshforward
from lima_driver_vz.driver import VZDriver
from lima_driver_vz.testing import fakevz
from vz_helpers import free_port, make_bootable

from lima_core import bootscripts, pidfile
from lima_core.errors import DriverError, DriverTimeout, HostUnsupported, NoDisplay, StartFailed


def started(make: Callable, fake: Any, config: dict | None = None, **kw: Any) -> tuple[Any, Any, Any, Path]:
    host, inst = make(config, **kw)
    d = make_bootable(inst, fake)
    return host, inst, host.start(), d


def test_start_runs_the_vm_and_stop_powers_it_off(make: Callable, fake: Any) -> None:
    host, inst, handle, d = started(make, fake)
    (machine,) = fake.world.machines
    assert machine.initializer[0] == "initWithConfiguration:queue:"
    assert machine.initializer[1][1].label == b"io.lima-vm.vz.inst"
    status = pidfile.read(d / "vz.pid")
    assert status.pid == os.getpid() and status.alive
    assert (d / "serialv.log").read_text() == "fake vz: the guest is running\n"
    assert handle.next(timeout=0.3) is None
    host.stop()
    assert machine.stop_requests == 1
    event = handle.next(timeout=5)
    assert event is not None and event.ended
    assert not (d / "vz.pid").exists()
    assert "powered off" in (d / "serialv.log").read_text()
    host.stop()  # nothing runs any more: a no-op


def test_a_guest_that_powers_off_ends_the_start_stream(make: Callable, fake: Any) -> None:
    fake.world.stops_after = 0.1
    _, _, handle, d = started(make, fake)
    event = handle.next(timeout=5)
    assert event is not None and event.ended
    assert not (d / "vz.pid").exists()


def test_stop_times_out_with_limas_message(make: Callable, fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "STOP_TIMEOUT", 0.3)
    fake.world.ignore_stop = True
    host, *_ = started(make, fake)
    with pytest.raises(DriverTimeout, match="^vz timeout while waiting for stop status$"):
        host.stop()


def test_start_failure_is_reported(make: Callable, fake: Any) -> None:
    fake.world.start_error = "The virtual machine failed to start."
    host, inst = make()
    d = make_bootable(inst, fake)
    with pytest.raises(StartFailed, match="could not start the VM: The virtual machine failed to start."):
        host.start()
    assert not (d / "vz.pid").exists()


def test_one_vm_per_instance(make: Callable, fake: Any) -> None:
    host, _, _, d = started(make, fake)
    with pytest.raises(StartFailed, match="already runs|already running"):
        host.start()
    assert pidfile.read(d / "vz.pid").pid == os.getpid()  # the running VM keeps its pid file


def test_a_vm_in_another_live_process_blocks_start(make: Callable, fake: Any) -> None:
    host, inst = make()
    d = make_bootable(inst, fake)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pidfile.write(d / "vz.pid", child.pid)
        with pytest.raises(StartFailed, match=f"already runs in process {child.pid}"):
            host.start()
    finally:
        child.kill()
        child.wait()


def test_a_stale_pid_file_is_replaced(make: Callable, fake: Any) -> None:
    host, inst = make()
    d = make_bootable(inst, fake)
    (d / "vz.pid").write_text("999999999\n")
    host.start()
    assert pidfile.read(d / "vz.pid").pid == os.getpid()


def test_stop_from_another_process_signals_the_hosting_process(make: Callable, fake: Any, tmp_path: Path) -> None:
    host, inst = make()
    d = Path(inst.dir)
    code = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\ntime.sleep(60)\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.2)
    pidfile.write(d / "vz.pid", child.pid)
    host.stop()
    assert child.wait(5) == 0
    assert not (d / "vz.pid").exists()


def test_guest_agent_over_vsock_2222(make: Callable, fake: Any) -> None:
    host, *_ = started(make, fake)
    conn, kind = host.guest_agent_conn()
    assert kind == "vsock"
    conn.sendall(b"ping")
    assert conn.recv(4) == b"ping"
    conn.close()
    assert host.forward_guest_agent() is False


def test_guest_agent_needs_the_vm_in_this_process(make: Callable) -> None:
    host, _ = make()
    with pytest.raises(DriverError, match="unable to connect to guest agent via vsock port 2222"):
        host.guest_agent_conn()


def test_additional_disks_are_locked_while_running(make: Callable, fake: Any) -> None:
    datadisks.path("data").parent.mkdir(parents=True)
    datadisks.path("data").write_bytes(b"\0" * 512)
    host, inst, handle, d = started(make, fake, {"additionalDisks": ["data"]})
    assert os.readlink(datadisks.disk_dir("data") / "in_use_by") == str(d)
    other, other_inst = make({"additionalDisks": ["data"]}, name="other")
    make_bootable(other_inst, fake)
    with pytest.raises(StartFailed, match="disk 'data' is in use by instance 'inst'"):
        other.start()
    host.stop()
    handle.next(timeout=5)
    assert not (datadisks.disk_dir("data") / "in_use_by").exists()


# -- SSH ---------------------------------------------------------------------------------------------


def _ssh_echo(make: Callable, fake: Any, over_vsock: bool, leases: Path | None = None) -> bytes:
    port = free_port()
    host, inst = make({"ssh": {"overVsock": over_vsock}})
    inst.ssh_local_port = port
    host.driver._leases = leases or Path("/nonexistent/leases")
    make_bootable(inst, fake)
    host.start()
    host.additional_setup_for_ssh()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"SSH-2.0-test\r\n")
        try:
            return c.recv(100)
        except ConnectionResetError:
            return b""


def test_ssh_is_forwarded_to_vsock_22_when_the_guest_listens_there(make: Callable, fake: Any) -> None:
    fake.world.vsock_listeners[22] = fakevz.echo
    assert _ssh_echo(make, fake, over_vsock=True) == b"SSH-2.0-test\r\n"


def test_ssh_without_a_guest_address_closes_the_connection(make: Callable, fake: Any) -> None:
    assert _ssh_echo(make, fake, over_vsock=True) == b""


def test_ssh_reaches_the_guests_nat_address_from_the_dhcp_lease(make: Callable, fake: Any, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """NIC 1 is on NAT: without vsock SSH, the forwarder dials the address macOS leased to the NIC's MAC."""
    from lima_core.network import mac_address

    guest = socket.create_server(("127.0.0.1", 0))  # the guest's sshd, at its NAT address
    threading.Thread(target=lambda: fakevz.echo(guest.accept()[0]), daemon=True).start()
    monkeypatch.setattr(driver, "GUEST_SSH_PORT", guest.getsockname()[1])
    port = free_port()
    host, inst = make({"ssh": {"overVsock": False}})
    inst.ssh_local_port = port
    leases = tmp_path / "dhcpd_leases"
    leases.write_text("{\n\tname=lima-inst\n\tip_address=127.0.0.1\n"
                      f"\thw_address=1,{mac_address(inst.dir)}\n\tlease=0x66c2a5f1\n}}\n")
    host.driver._leases = leases
    make_bootable(inst, fake)
    host.start()
    host.additional_setup_for_ssh()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"SSH-2.0-test\r\n")
            assert c.recv(100) == b"SSH-2.0-test\r\n"
    finally:
        guest.close()


def test_lease_lookup(tmp_path: Path) -> None:
    leases = tmp_path / "dhcpd_leases"
    leases.write_text("{\n\tname=lima-a\n\tip_address=192.168.64.2\n\thw_address=1,52:55:55:a:b:c\n"
                      "\tidentifier=1,52:55:55:a:b:c\n\tlease=0x66c2a5f1\n}\n"
                      "{\n\tname=lima-a\n\tip_address=192.168.64.7\n\thw_address=1,52:55:55:a:b:c\n"
                      "\tlease=0x66c2a600\n}\n"
                      "{\n\tname=other\n\tip_address=192.168.64.3\n\thw_address=1,52:55:55:1:2:3\n\tlease=0x1\n}\n")
    assert sshforward.lease_ip("52:55:55:0a:0b:0c", leases) == "192.168.64.7"
    assert sshforward.lease_ip("52:55:55:01:02:03", leases) == "192.168.64.3"
    assert sshforward.lease_ip("52:55:55:ff:ff:ff", leases) is None
    assert sshforward.lease_ip("52:55:55:01:02:03", tmp_path / "missing") is None


def test_tcp_fallback_and_the_decision_sticks() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    threading.Thread(target=lambda: [fakevz.echo(server.accept()[0]) for _ in range(2)], daemon=True).start()
    vsock_tries = []

    def refused() -> socket.socket:
        vsock_tries.append(1)
        raise OSError("connection to vsock port 22 was refused")

    dial = sshforward.PreferFirst(refused, sshforward.tcp_dialer(lambda: "127.0.0.1", port))
    fwd = sshforward.Forwarder(0, dial)
    try:
        for _ in range(2):
            with socket.create_connection(fwd.address, timeout=5) as c:
                c.sendall(b"x")
                assert c.recv(1) == b"x"
        assert dial.choice == 1 and len(vsock_tries) == 1
    finally:
        fwd.close()
        server.close()


def test_a_closed_forwarder_ends_its_accept_thread() -> None:
    fwd = sshforward.Forwarder(0, lambda: socket.create_connection(("127.0.0.1", 9)))
    thread = fwd._thread
    fwd.close()
    assert not thread.is_alive()  # not left blocked in accept() for the life of the process


def test_the_watcher_ends_once_the_vm_is_finished_elsewhere(make: Callable, fake: Any) -> None:
    """finished() (a stop, the test teardown) ends the watcher even while the machine still says running:
    it used to spin on a set event, taking the CPU from everything else in the process."""
    from lima_driver_vz import running

    host, inst, *_ = started(make, fake)
    vm = running.lookup(Path(inst.dir))
    assert vm is not None
    (watcher,) = [t for t in threading.enumerate() if t.name == f"vz-watch-{vm.name}"]
    running.finished(vm)
    watcher.join(running.POLL_INTERVAL * 4)
    assert not watcher.is_alive()


# -- GUI and screenshots ----------------------------------------------------------------------------


def test_run_gui_shows_the_window_until_the_vm_stops(make: Callable, fake: Any) -> None:
    host, *_ = started(make, fake, {"video": {"display": "vz"}})
    assert host.info().features.can_run_gui
    shots: list[Any] = []

    def shoot() -> None:
        deadline = time.monotonic() + 30
        while not fake.world.calls and time.monotonic() < deadline:  # until the window is shown
            time.sleep(0.02)
        shots.append(host.capture_screenshot(format="png"))
        shots.append(host.capture_screenshot(format="bmp"))
        host.stop()  # the guest powers off: run_gui returns

    t = threading.Thread(target=shoot)
    t.start()
    host.run_gui()  # pytest runs tests on the main thread
    t.join()
    assert fake.world.calls == ["window shown: Lima: inst"]
    assert shots == [b"\x89PNG fake", b"BM fake"]
    with pytest.raises(NoDisplay, match="no window open"):
        host.capture_screenshot(format="png")


def test_run_gui_needs_the_main_thread(make: Callable, fake: Any) -> None:
    host, *_ = started(make, fake, {"video": {"display": "vz"}})
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: _catch(errors, host.run_gui))
    t.start()
    t.join()
    assert "must run on the process's main thread" in str(errors[0])


def _catch(errors: list, fn: Callable) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)


def test_no_display(make: Callable, fake: Any) -> None:
    host, *_ = started(make, fake)
    assert not host.info().features.can_run_gui
    with pytest.raises(DriverError, match="RunGUI is not supported for the given driver 'vz' and display 'none'"):
        host.run_gui()
    with pytest.raises(NoDisplay, match='set video.display to "default" or "vz"'):
        host.capture_screenshot(format="png")


# -- the rest ------------------------------------------------------------------------------------------


def test_boot_scripts(make: Callable, tmp_path: Path) -> None:
    host, _ = make()
    scripts = host.boot_scripts()
    assert list(scripts) == ["boot.Linux/05-rosetta-volume.sh"]
    assert scripts == bootscripts.load("lima_driver_vz")  # the one loader in lima_core
    script = tmp_path / "s.sh"
    script.write_bytes(scripts["boot.Linux/05-rosetta-volume.sh"])
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = {**os.environ, "LIMA_CIDATA_ROSETTA_ENABLED": "false"}
    assert subprocess.run(["bash", str(script)], env=env).returncode == 0  # disabled: nothing to do


def test_info_before_and_after_configure(make: Callable) -> None:
    info = VZDriver().info()
    assert (info.name, info.vsock_port, info.virtio_port, info.instance_dir) == ("vz", 2222, "", "")
    assert info.features.supported_image_formats == ["raw", "asif"]
    host, inst = make({"vmOpts": {"vz": {"rosetta": {"enabled": True, "binfmt": True}}}})
    features = host.info().features
    assert features.rosetta_enabled and features.rosetta_bin_fmt and not features.dynamic_ssh_address
    assert host.info().instance_dir == inst.dir


def test_framework_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(framework.FRAMEWORK_ENV, "lima_driver_vz.testing.fakevz:bindings")
    assert "fake" in framework.load().label
    monkeypatch.setenv(framework.FRAMEWORK_ENV, "lima_driver_vz.testing.fakevz:nothing")
    with pytest.raises(DriverError, match="does not name a function returning vz bindings"):
        framework.load()
    monkeypatch.delenv(framework.FRAMEWORK_ENV)
    import importlib.util

    if importlib.util.find_spec("Virtualization") is None:
        with pytest.raises(HostUnsupported, match="vz needs the pyobjc module Virtualization"):
            framework.load()


def test_fake_refuses_selectors_pyobjc_does_not_have(fake: Any) -> None:
    config = fake.Virtualization.VZVirtualMachineConfiguration.alloc().init()
    with pytest.raises(AttributeError, match="has no selector 'setCpuCount_'"):
        config.setCpuCount_(2)
    assert json.dumps(fakevz.describe(config)) == '{"class": "VZVirtualMachineConfiguration"}'


def test_port_forwarding_through_the_guest_agent_on_vsock(make: Callable, fake: Any, tmp_path: Path) -> None:
    """The host agent's forwarding reaches the guest agent through guest_agent_conn (vsock 2222), as Lima's."""
    from lima_core import guestfields
    from lima_core.hostagent import portfwd, portrules
    from lima_core.limatype import LimaYAML
    from lima_core.testing import fakeguest

    listening: set[tuple[str, str, int]] = set()
    fake.world.vsock_listeners[2222] = lambda conn: fakeguest.serve_agent(conn, lambda: set(listening))
    host, inst, _handle, d = started(make, fake)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    guest_port, host_port = srv.getsockname()[1], free_port()
    cfg = LimaYAML.from_json({"portForwards": [{"guestPort": guest_port, "hostPort": host_port}]})
    guestfields.fill_defaults(cfg)
    events: list[dict] = []
    pf = portfwd.PortForwarding(inst_dir=d, name=inst.name, driver=host, rules=portrules.resolve(cfg, 0, d, {}, {}),
                                plain=False, skip_sockets=False, little_endian=True,
                                emit=lambda **kw: events.append(kw), can_run_agent=lambda: True)
    pf.start()
    try:
        assert pf.wait_agent(10) and pf.agent_state == "connected"
        listening.add(("tcp", "127.0.0.1", guest_port))
        deadline = time.monotonic() + 10
        while not pf.status()["portForwards"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pf.status()["portForwards"][0]["hostAddr"] == f"127.0.0.1:{host_port}"
        threading.Thread(target=lambda: srv.accept()[0].sendall(b"through vsock"), daemon=True).start()
        with socket.create_connection(("127.0.0.1", host_port), timeout=10) as c:
            assert c.recv(100) == b"through vsock"
        assert events[0]["port_forward"] == {"type": "forwarding", "protocol": "tcp",
                                             "guestAddr": f"127.0.0.1:{guest_port}", "hostAddr": f"127.0.0.1:{host_port}"}
    finally:
        pf.stop()
        srv.close()
        host.stop()
