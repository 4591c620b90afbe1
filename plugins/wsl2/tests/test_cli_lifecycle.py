"""`lima create --vm-type=wsl2`, start, list, stop, delete through the real CLI, with the fake wsl.exe.

The driver runs in-process (the installed entry point) and as an external
``lima-driver-wsl2``; the host agent is a real process; ``ssh`` is lima-core's
fake, which the fake wsl.exe's boot command feeds (see fakewsl's docstring).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from wsl2_helpers import FakeWSL

from lima_core.cli import app
from lima_core.external.build import write_executable
from lima_core.testing import fakessh


class Lima:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool | None = None) -> Any:
        result = self.runner.invoke(app, list(args))
        if ok is not None:
            assert (result.exit_code == 0) is ok, (args, result.exit_code, result.stdout, result.stderr,
                                                   result.exception)
        return result


@pytest.fixture
def lima() -> Lima:
    return Lima()


@pytest.fixture(params=["internal", "external"])
def driver_mode(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "internal":
        monkeypatch.setenv("LIMA_LOAD_DRIVERS", "wsl2")
    else:
        bin_dir = tmp_path_factory.mktemp("wsl2-driver-bin")
        write_executable(bin_dir, "wsl2", "lima_driver_wsl2.driver:WSL2Driver")
        monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
        monkeypatch.setenv("LIMA_DRIVERS_PATH", str(bin_dir))
    return request.param


@pytest.fixture
def fake_ssh(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path_factory.mktemp("fake-ssh")
    fakessh.install(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def template(tmp_path: Path, rootfs: Path) -> Path:
    path = tmp_path / "wsl.yaml"
    path.write_text(f"images:\n- location: {rootfs}\nmounts: []\n")
    return path


@pytest.fixture
def cleanup(fake_wsl: FakeWSL) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    home = Path(os.environ["LIMA_HOME"])
    for name in names:
        if (home / name).exists():
            subprocess.run([sys.executable, "-m", "lima_core", "stop", "-f", name], capture_output=True, timeout=60)
            subprocess.run([str(fake_wsl.exe), "--terminate", f"lima-{name}"], capture_output=True, timeout=60)


def listed(lima: Lima, name: str) -> dict[str, Any]:
    return json.loads(lima("list", "--format", "json", name, ok=True).stdout)


def test_create_start_list_stop_delete(lima: Lima, driver_mode: str, fake_wsl: FakeWSL, fake_ssh: None,
                                       template: Path, cleanup: list[str]) -> None:
    cleanup.append("dev")
    r = lima("create", "--vm-type=wsl2", "--name", "dev", str(template), ok=True)
    home = Path(os.environ["LIMA_HOME"])
    assert (home / "dev" / "lima.yaml").exists()
    inst = listed(lima, "dev")
    assert (inst["status"], inst["vmType"]) == ("Uninitialized", "wsl2")  # not imported into WSL yet

    r = lima("start", "--timeout", "2m", "dev", ok=True)
    assert f"{driver_mode} VM driver 'wsl2'" in r.stderr and "READY" in r.stderr
    inst = listed(lima, "dev")
    assert inst["status"] == "Running" and inst["sshLocalPort"] == 22 and inst["sshAddress"] == "172.20.0.2"
    assert [d["name"] for d in fake_wsl.listed()["distros"]] == ["Ubuntu", "lima-dev"]
    assert (home / "dev" / "cidata" / "ssh_authorized_keys").exists()  # noCloudInit: cidata as a directory

    table = lima("list", "dev", ok=True).stdout
    assert "dev" in table and "Running" in table and "wsl2" in table

    lima("stop", "dev", ok=True)
    assert listed(lima, "dev")["status"] == "Stopped"
    assert fake_wsl.listed()["distros"][1]["state"] == "Stopped"

    lima("start", "--timeout", "2m", "dev", ok=True)  # the distro exists: started, not imported again
    assert listed(lima, "dev")["status"] == "Running"
    assert len([c for c in fake_wsl.calls() if c[0] == "--import"]) == 1
    lima("stop", "dev", ok=True)

    lima("delete", "dev", ok=True)
    assert not (home / "dev").exists()
    assert [d["name"] for d in fake_wsl.listed()["distros"]] == ["Ubuntu"]
    assert ["--unregister", "lima-dev"] in fake_wsl.calls()


def test_the_guest_agent_over_ssh_and_a_forwarded_port(lima: Lima, driver_mode: str, fake_wsl: FakeWSL,
                                                      fake_ssh: None, template: Path, cleanup: list[str]) -> None:
    """Off Windows wsl2 has no Hyper-V socket: forward_guest_agent is true, and the host agent reaches the
    distro's lima-guestagent through ga.sock forwarded over SSH (Lima's way); socket rules are skipped
    (SkipSocketForwarding), ports are forwarded."""
    import socket
    import time

    from lima_core.testing import fakeguest

    cleanup.append("fwd")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    guest_port = srv.getsockname()[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        host_port = probe.getsockname()[1]
    template.write_text(template.read_text() + f"portForwards:\n- guestPort: {guest_port}\n  hostPort: {host_port}\n"
                        "- guestSocket: /run/x.sock\n  hostSocket: x.sock\n")
    lima("create", "--vm-type=wsl2", "--name", "fwd", str(template), ok=True)
    lima("start", "--timeout", "2m", "fwd", ok=True)
    home = Path(os.environ["LIMA_HOME"])
    state = json.loads(lima("port-forwards", "fwd", "--format", "json", ok=True).stdout)
    assert state["guestAgent"]["state"] == "connected", state
    assert (home / "fwd" / "ga.sock").is_symlink()  # the fake ssh's -O forward -L of ga.sock
    fakeguest.listen(home / "fwd", "tcp", "127.0.0.1", guest_port)
    deadline = time.monotonic() + 10
    while not state["portForwards"] and time.monotonic() < deadline:
        time.sleep(0.1)
        state = json.loads(lima("port-forwards", "fwd", "--format", "json", ok=True).stdout)
    assert [(f["hostAddr"], f["state"]) for f in state["portForwards"]] == [(f"127.0.0.1:{host_port}", "forwarding")]
    with socket.create_connection(("127.0.0.1", host_port), timeout=10) as c:
        srv.accept()[0].sendall(b"from the distro")
        assert c.recv(100) == b"from the distro"
    log = (home / "fwd" / "ha.stderr.log").read_text()
    assert "portForwards[1]: not forwarding socket /run/x.sock: driver 'wsl2' does not forward sockets" in log
    lima("stop", "fwd", ok=True)
    srv.close()


def test_list_shows_a_broken_wsl(lima: Lima, driver_mode: str, fake_wsl: FakeWSL, template: Path,
                                 cleanup: list[str]) -> None:
    cleanup.append("nowsl")
    lima("create", "--vm-type=wsl2", "--name", "nowsl", str(template), ok=True)
    fake_wsl.distros([])
    assert listed(lima, "nowsl")["status"] == "Uninitialized"  # nothing registered: start imports it
    fake_wsl.behave(fail={"--list": "The Windows Subsystem for Linux is not installed."})
    inst = listed(lima, "nowsl")
    assert inst["status"] == "Broken"
    assert "The Windows Subsystem for Linux is not installed." in " ".join(inst["errors"])


def test_create_refuses_a_disk_image(lima: Lima, driver_mode: str, fake_wsl: FakeWSL, tmp_path: Path) -> None:
    image = tmp_path / "ubuntu.img"
    image.write_bytes(b"\0" * 512)
    t = tmp_path / "img.yaml"
    t.write_text(f"images:\n- location: {image}\n")
    r = lima("create", "--vm-type=wsl2", "--name", "img", str(t), ok=False)
    assert "tarball root file system required" in r.stderr and "it is a disk image" in r.stderr
    assert not (Path(os.environ["LIMA_HOME"]) / "img").exists()


def test_drivers_list_on_linux_without_wsl(lima: Lima, monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.platform == "win32":
        pytest.skip("checks a non-Windows host")
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "wsl2")
    rows = json.loads(lima("drivers", "list", "--format", "json", ok=True).stdout)
    (row,) = [r for r in rows if r["name"] == "wsl2"]
    assert row["available"] == "no: wsl2 needs Windows 10 (build 19041) or Windows 11; this host runs Linux"
