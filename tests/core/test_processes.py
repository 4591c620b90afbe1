"""External driver processes through the real path: spawn, reuse, faults, stop."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from lima_core import pidfile, processes
from lima_core.errors import DriverError, DriverProcessError, DriverTimeout
from lima_core.external import supervisor
from lima_core.external.client import connect
from lima_core.host import DriverHost
from lima_core.protocol import rpc
from lima_core.testing.conformance import new_instance


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return str(path)


@pytest.fixture
def inst_dir(short_tmp: Path) -> Path:
    d = short_tmp / "inst"
    d.mkdir()
    return d


def test_exits_before_socket_quotes_stderr(inst_dir: Path, short_tmp: Path) -> None:
    exe = script(short_tmp / "lima-driver-bad", "echo 'cannot open /dev/kvm: Permission denied' >&2\nexit 3\n")
    with pytest.raises(DriverProcessError, match=r"exited with status 3 before creating its socket: "
                                                 r"cannot open /dev/kvm: Permission denied"):
        supervisor.spawn(exe, "bad", inst_dir)
    assert not (inst_dir / "bad.drv.pid").exists()
    assert "Permission denied" in (inst_dir / "driver.stderr.log").read_text()


def test_never_creates_socket_times_out_and_is_killed(inst_dir: Path, short_tmp: Path) -> None:
    exe = script(short_tmp / "lima-driver-slow", "exec sleep 60\n")
    t0 = time.monotonic()
    with pytest.raises(DriverProcessError, match=r"did not create slow.drv.sock within 0.5 s"):
        supervisor.spawn(exe, "slow", inst_dir, timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert not any("sleep 60" in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])
                   if p.info["cmdline"] and str(short_tmp) in " ".join(p.info["cmdline"]))


def test_reuses_a_server_that_answers(inst_dir: Path, driver_bin: Path) -> None:
    exe = str(driver_bin / "lima-driver-fake")
    first = supervisor.ensure_server(exe, "fake", inst_dir)
    try:
        assert first.process is not None
        second = supervisor.ensure_server(exe, "fake", inst_dir)
        assert second.process is None  # reused, nothing spawned
        assert (inst_dir / "fake.drv.pid").read_text().strip() == str(first.process.pid)
        assert oct((inst_dir / "fake.drv.sock").stat().st_mode & 0o777) == "0o600"
    finally:
        supervisor.stop_servers(inst_dir)
    assert first.process.wait(5) == 0  # graceful SIGTERM: clean exit
    assert not (inst_dir / "fake.drv.sock").exists() and not (inst_dir / "fake.drv.pid").exists()


def test_a_launched_server_is_waited_for_not_duplicated(inst_dir: Path, driver_bin: Path) -> None:
    exe = str(driver_bin / "lima-driver-fake")
    supervisor.launch(exe, "fake", inst_dir)  # returns at once; `lima start` does this before the host agent
    launched = int((inst_dir / "fake.drv.pid").read_text())
    supervisor.launch(exe, "fake", inst_dir)  # starting already: nothing more spawned
    assert int((inst_dir / "fake.drv.pid").read_text()) == launched
    try:
        server = supervisor.ensure_server(exe, "fake", inst_dir)
        assert server.process is None and server.reused is not None and server.reused.pid == launched
        assert supervisor.answers(inst_dir / "fake.drv.sock")
        supervisor.launch(exe, "fake", inst_dir)  # answering: nothing spawned
        assert int((inst_dir / "fake.drv.pid").read_text()) == launched
        family = [p for p in psutil.process_iter(["cmdline"])
                  if p.info["cmdline"] and any(str(inst_dir) == a for a in p.info["cmdline"])]
        assert [p.pid for p in family] == [launched]
    finally:
        supervisor.stop_servers(inst_dir)
    assert not psutil.pid_exists(launched) or psutil.Process(launched).status() == psutil.STATUS_ZOMBIE


def test_a_launched_server_that_never_answers_is_stopped(inst_dir: Path, short_tmp: Path) -> None:
    exe = script(short_tmp / "lima-driver-slow", "exec sleep 60\n")
    supervisor.launch(exe, "slow", inst_dir)
    launched = psutil.Process(int((inst_dir / "slow.drv.pid").read_text()))
    with pytest.raises(DriverProcessError, match=r"did not create slow.drv.sock within 0.5 s"):
        supervisor.ensure_server(exe, "slow", inst_dir, timeout=0.5)
    assert processes.wait_exit(launched, 5)
    assert not (inst_dir / "slow.drv.pid").exists()


def test_a_launched_server_that_exits_is_replaced_by_a_spawn(inst_dir: Path, short_tmp: Path) -> None:
    exe = script(short_tmp / "lima-driver-bad", "echo 'no such device' >&2\nexit 3\n")
    supervisor.launch(exe, "bad", inst_dir)
    with pytest.raises(DriverProcessError, match=r"exited with status 3 before creating its socket: no such device"):
        supervisor.ensure_server(exe, "bad", inst_dir)
    assert not (inst_dir / "bad.drv.pid").exists()


def test_stale_socket_is_replaced(inst_dir: Path, driver_bin: Path) -> None:
    import socket

    stale = inst_dir / "fake.drv.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # the file stays, nobody listens
    host = connect(str(driver_bin / "lima-driver-fake"), "fake", inst_dir)
    try:
        assert host.info().name == "fake"
    finally:
        supervisor.stop_servers(inst_dir)


def test_hang_past_deadline_gives_timeout(inst_dir: Path, driver_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(rpc.WIRE, "validate", dataclasses.replace(rpc.WIRE["validate"], deadline=0.5))
    host = connect(str(driver_bin / "lima-driver-fake"), "fake", inst_dir)
    try:
        host.configure(new_instance(inst_dir, "fake", {"vmOpts": {"fake": {"hangValidate": 30}}}))
        t0 = time.monotonic()
        with pytest.raises(DriverTimeout, match="did not answer validate in time"):
            host.validate()
        assert time.monotonic() - t0 < 5
        assert host.info().name == "fake"  # the server still answers other calls
    finally:
        supervisor.stop_servers(inst_dir, force=True)


def test_killed_during_start_is_reported_on_the_handle(inst_dir: Path, driver_bin: Path) -> None:
    host = connect(str(driver_bin / "lima-driver-fake"), "fake", inst_dir)
    host.configure(new_instance(inst_dir, "fake"))
    handle = host.start()
    vm = pidfile.read(inst_dir / "fake.pid").process
    assert vm is not None
    driver_pid = int((inst_dir / "fake.drv.pid").read_text())
    os.kill(driver_pid, signal.SIGKILL)
    event = handle.next(timeout=15)
    assert event is not None and event.error and "lost the start stream of driver 'fake'" in event.error
    assert handle.next(timeout=5).ended  # type: ignore[union-attr]
    vm.kill()  # the VM was orphaned (the driver died without Stop): the host agent's job, tested there
    supervisor.stop_servers(inst_dir, force=True)


def test_stale_pid_file_of_unrelated_process_survives(inst_dir: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (inst_dir / "fake.drv.pid").write_text(f"{bystander.pid}\n")  # as Lima writes it: no identity record
        notes = supervisor.stop_servers(inst_dir, force=True)
        assert bystander.poll() is None
        assert any("is not lima-driver-fake" in n for n in notes)

        pidfile.write(inst_dir / "other.drv.pid", bystander.pid)
        ident = pidfile.identity_path(inst_dir / "other.drv.pid")
        ident.write_text(ident.read_text().replace('"createTime": ', '"createTime": 1'))  # a different process
        notes = supervisor.stop_servers(inst_dir, force=True)
        assert bystander.poll() is None
        assert any("number was reused" in n for n in notes)
    finally:
        bystander.kill()
        bystander.wait()


def test_graceful_stop_escalates_to_kill(inst_dir: Path, short_tmp: Path) -> None:
    exe = script(short_tmp / "lima-driver-stubborn",
                 "trap '' TERM\nexec python3 -c \"import socket,sys,time;s=socket.socket(socket.AF_UNIX);"
                 "s.bind(sys.argv[1]);s.listen();time.sleep(60)\" \"$2/stubborn.drv.sock\"\n")
    server = supervisor.spawn(exe, "stubborn", inst_dir)
    assert server.process is not None
    t0 = time.monotonic()
    supervisor.stop_servers(inst_dir, timeout=0.5)
    elapsed = time.monotonic() - t0
    assert server.process.wait(1) == -signal.SIGKILL  # killed after SIGTERM was ignored
    assert 0.5 <= elapsed < 5  # it waited out SIGTERM first


def test_interrupt_cancels_a_call_without_deadline(inst_dir: Path, driver_bin: Path) -> None:
    """DriverHost.interrupt, from another thread, ends an external driver's call that hangs (how the host
    agent's stop ends a start): the caller gets one DriverError, and the driver answers other calls."""
    host = connect(str(driver_bin / "lima-driver-fake"), "fake", inst_dir)
    try:
        host.configure(new_instance(inst_dir, "fake", {"vmOpts": {"fake": {"hangIn": {"create_disk": 300}}}}))
        raised = _interrupt_while_hanging(host, inst_dir, "create_disk")
        assert len(raised) == 1 and type(raised[0]) is DriverError
        assert "the call to create disk of driver 'fake' was interrupted" in str(raised[0])
        assert host.info().name == "fake"
        # The hung hook's thread does not keep the driver process alive once it is asked to stop.
        t0 = time.monotonic()
        assert supervisor.stop_servers(inst_dir) == []
        assert time.monotonic() - t0 < supervisor.STOP_TIMEOUT / 2
        assert "1 call(s) still running after the grace; exiting without them" in \
            (inst_dir / "driver.stderr.log").read_text()
    finally:
        host.close()
        supervisor.stop_servers(inst_dir, force=True)


def test_a_start_the_host_gave_up_on_ends_the_vm_it_started(inst_dir: Path, driver_bin: Path) -> None:
    """The host cancels the start stream while the driver is still starting the VM (a stop during the
    start): once the driver's start returns, the server ends that VM, which no one else knows of."""
    host = connect(str(driver_bin / "lima-driver-fake"), "fake", inst_dir)
    try:
        host.configure(new_instance(inst_dir, "fake", {"vmOpts": {"fake": {"hangIn": {"start": 1}}}}))
        raised = _interrupt_while_hanging(host, inst_dir, "start")
        assert len(raised) == 1 and isinstance(raised[0], DriverError)  # given up before the VM was launched
        deadline = time.monotonic() + 15
        while not (inst_dir / "fakevm.log").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (inst_dir / "fakevm.log").exists(), "the driver did not go on to launch the VM"
        while pidfile.read(inst_dir / "fake.pid").alive and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pidfile.read(inst_dir / "fake.pid").alive, "the VM of the abandoned start is still running"
    finally:
        host.close()
        supervisor.stop_servers(inst_dir, force=True)
        vm = pidfile.read(inst_dir / "fake.pid").process
        if vm is not None:
            vm.kill()


def _interrupt_while_hanging(host: DriverHost, inst_dir: Path, hook: str) -> list[BaseException]:
    """Call *hook* in another thread and interrupt it once the fake driver hangs in it; what the call raised."""
    raised: list[BaseException] = []

    def call() -> None:
        try:
            getattr(host, hook)()
        except BaseException as exc:  # noqa: BLE001 - what the caller gets is the point
            raised.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 10
    while not (inst_dir / f"fake.hanging.{hook}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    host.interrupt()
    caller.join(5)
    assert not caller.is_alive(), f"{hook} was not interrupted"
    return raised
