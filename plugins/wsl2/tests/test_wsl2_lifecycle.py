"""start, stop, delete and inspect_status against the fake wsl.exe."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from lima_driver_wsl2.driver import WSL2Driver
from wsl2_helpers import FakeWSL

from lima_core import bootscripts
from lima_core.errors import StartFailed, UnsupportedOperation


def test_first_start_imports_later_starts_do_not(make: Callable, fake_wsl: FakeWSL) -> None:
    host, inst = make()
    (Path(inst.dir) / "image").write_bytes(b"tar")
    for _ in range(2):
        handle = host.start()
        assert host.inspect_status(inst.copy()) == "Running"
        host.stop()
        event = handle.next(timeout=30)
        assert event is not None and event.ended and event.error is None
    imports = [c for c in fake_wsl.calls() if c[0] == "--import"]
    assert len(imports) == 1
    assert (Path(inst.dir) / "ext4.vhdx").exists()  # WSL keeps the distro's disk in the instance directory


def test_start_without_a_root_filesystem(make: Callable, fake_wsl: FakeWSL) -> None:
    host, inst = make({"images": [{"location": "https://example.com/rootfs.tar.gz"}]})
    with pytest.raises(StartFailed, match="the root filesystem has not been downloaded"):
        host.start()


def test_start_with_no_distributions_imports_the_instances_own(make: Callable, fake_wsl: FakeWSL) -> None:
    """wsl --import needs no other distribution: a WSL without any is not broken (Lima says it is)."""
    fake_wsl.distros([])
    host, inst = make()
    (Path(inst.dir) / "image").write_bytes(b"tar")
    assert host.inspect_status(inst.copy()) == "Uninitialized"
    handle = host.start()
    fake_wsl.wait_for_keep_alive(instance_dir=inst.dir)
    assert [d["name"] for d in fake_wsl.listed()["distros"]] == ["lima-inst"]
    host.stop()
    assert handle.next(timeout=30).ended


def test_a_failing_boot_is_reported(make: Callable, fake_wsl: FakeWSL) -> None:
    fake_wsl.behave(boot_exit=3)
    host, inst = make()
    (Path(inst.dir) / "image").write_bytes(b"tar")
    handle = host.start()
    event = handle.next(timeout=30)
    assert event is not None and "exited with status 3" in event.error and "/var/log/lima-init.log" in event.error
    host.stop()


def test_stopping_from_outside_ends_the_start_stream(make: Callable, fake_wsl: FakeWSL) -> None:
    host, inst = make()
    (Path(inst.dir) / "image").write_bytes(b"tar")
    handle = host.start()
    fake_wsl.wait_for_keep_alive(instance_dir=inst.dir)
    subprocess.run([str(fake_wsl.exe), "--terminate", "lima-inst"], check=True, capture_output=True)
    event = handle.next(timeout=30)
    assert event is not None and event.ended and event.error is None


def test_cancel_terminates_the_distro(make: Callable, fake_wsl: FakeWSL) -> None:
    host, inst = make()
    (Path(inst.dir) / "image").write_bytes(b"tar")
    handle = host.start()
    handle.cancel()
    assert handle.next(timeout=30).ended
    assert host.inspect_status(inst.copy()) == "Stopped"


def test_stop_works_from_another_driver_object(make: Callable, fake_wsl: FakeWSL) -> None:
    host, inst = make()
    (Path(inst.dir) / "image").write_bytes(b"tar")
    handle = host.start()
    fake_wsl.wait_for_keep_alive(instance_dir=inst.dir)
    other, _ = make(name="inst")  # same instance, a fresh driver (another process would be the same)
    other.stop()
    assert handle.next(timeout=30).ended


def test_delete_unregisters_a_registered_distro(make: Callable, fake_wsl: FakeWSL) -> None:
    host, inst = make()
    (Path(inst.dir) / "image").write_bytes(b"tar")
    handle = host.start()
    host.stop()
    handle.next(timeout=30)
    host.delete()
    assert [d["name"] for d in fake_wsl.listed()["distros"]] == ["Ubuntu"]
    host.delete()  # not registered any more: nothing to do
    assert [c for c in fake_wsl.calls() if c[0] == "--unregister"] == [["--unregister", "lima-inst"]]


def test_delete_unregisters_whatever_the_state_word(make: Callable, fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-inst", "state": "Stopped", "version": 2}])
    fake_wsl.behave(states={"Stopped": "Beendet"})
    host, _ = make()
    host.delete()
    assert fake_wsl.listed()["distros"] == []


def test_inspect_status(make: Callable, fake_wsl: FakeWSL) -> None:
    host, inst = make()
    probe = inst.copy()
    probe.cpus, probe.memory = 4, 1 << 30
    assert host.inspect_status(probe) == "Uninitialized"
    assert probe.ssh_local_port == 22 and probe.cpus == 0 and probe.memory == 0 and not probe.ssh_address
    fake_wsl.distros([{"name": "lima-inst", "state": "Running", "version": 2}])
    fake_wsl.behave(ip="172.29.0.9")
    probe = inst.copy()
    assert host.inspect_status(probe) == "Running" and probe.ssh_address == "172.29.0.9"


def test_inspect_status_broken_when_wsl_fails(make: Callable, fake_wsl: FakeWSL) -> None:
    fake_wsl.behave(fail={"--list": "The Windows Subsystem for Linux is not installed. You can install by running "
                                    "'wsl.exe --install'."})
    host, inst = make()
    probe = inst.copy()
    assert host.inspect_status(probe) == "Broken"
    assert probe.errors[0].startswith("failed to run `wsl --list --verbose`: `wsl.exe --list --verbose` exited with "
                                      "status 255 (out=\"The Windows Subsystem for Linux is not installed.")
    assert probe.ssh_local_port == 22


def test_inspect_status_without_wsl(make: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    host, inst = make()
    probe = inst.copy()
    assert host.inspect_status(probe) == "Broken" and "cannot run wsl.exe" in probe.errors[0]


def test_info_and_the_rest(make: Callable, tmp_path: Path) -> None:
    info = WSL2Driver().info()
    assert info.name == "wsl2" and info.instance_dir == ""
    f = info.features
    assert (f.dynamic_ssh_address, f.static_ssh_port, f.skip_socket_forwarding, f.no_cloud_init,
            f.can_run_gui) == (True, True, True, True, False)
    host, inst = make()
    assert host.info().instance_dir == inst.dir
    assert host.ssh_address() == "127.0.0.1"
    assert host.forward_guest_agent() is (host.info().vsock_port == 0)
    for hook in ("create_snapshot", "run_gui", "change_display_password"):
        with pytest.raises(UnsupportedOperation, match="driver 'wsl2' does not support"):
            host.call(hook, **({"tag": "t"} if "snapshot" in hook else {"password": "p"} if "password" in hook else {}))
    # WSL cannot save a distribution's memory: suspend is not supported, said as for any missing capability.
    for call in (host.suspend, host.resume):
        with pytest.raises(UnsupportedOperation, match="^driver 'wsl2' does not support suspend$"):
            call()
    scripts = host.boot_scripts()
    assert list(scripts) == ["boot.Linux/02-no-cloud-init-setup.sh"]
    assert scripts == bootscripts.load("lima_driver_wsl2")  # the one loader in lima_core
    script = tmp_path / "s.sh"
    script.write_bytes(scripts["boot.Linux/02-no-cloud-init-setup.sh"])
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    assert subprocess.run(["sh", str(script)], env={"PATH": "/usr/bin:/bin"}).returncode == 0  # not NoCloudInit
