"""Argument lists: what the driver asks wsl.exe, and that names and paths are never shell text."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from lima_driver_wsl2 import provision, sshaddress
from wsl2_helpers import FakeWSL

from lima_core.errors import DriverError

NASTY = "it's $(touch pwned) `touch pwned2` \"q\" ; rm -rf x"


def test_lifecycle_commands_with_a_hostile_lima_home(make: Callable, fake_wsl: FakeWSL, tmp_path: Path) -> None:
    parent = tmp_path / NASTY
    host, inst = make(parent=parent, name="dev")
    d = inst.dir
    (Path(d) / "image").write_bytes(b"tar")
    handle = host.start()
    fake_wsl.wait_for_keep_alive("lima-dev", d)
    host.stop()
    handle.next(timeout=30)
    host.delete()
    calls = [c for c in fake_wsl.calls() if c != ["--list", "--verbose"]]
    boot_script = calls[2][-1]
    keep_alive = ["-d", "lima-dev", "--exec", "bash", "-c", "nohup sleep 2147483647d >/dev/null 2>&1"]
    assert calls[:3] == [["--import", "lima-dev", d, f"{d}/basedisk", "--version", "2"], ["--distribution", "lima-dev"],
                         ["-d", "lima-dev", "--exec", "bash", "-c", 'wslpath -u "$1"', "wslpath", boot_script]]
    # boot and keep-alive run side by side: either may be recorded first
    assert sorted(calls[3:5]) == sorted([["-d", "lima-dev", "--exec", "bash", boot_script], keep_alive])
    assert calls[5:] == [["--terminate", "lima-dev"], ["--unregister", "lima-dev"]]
    assert not list(Path.cwd().glob("pwned*")) and not list(tmp_path.glob("pwned*"))


def test_the_boot_script_quotes_the_cidata_path(tmp_path: Path) -> None:
    cidata = str(tmp_path / NASTY / "cidata")
    script = provision.boot_script(cidata).decode()
    assert "exec > >(tee /var/log/lima-init.log) 2>&1" in script and 'exec "$LIMA_CIDATA_MNT/boot.sh"' in script
    line = next(ln for ln in script.splitlines() if "wslpath" in ln)
    probe = line.replace("/usr/bin/wslpath", "printf %s") + '\nprintf %s "$LIMA_CIDATA_MNT"'
    out = subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout == cidata
    assert not list(tmp_path.glob("pwned*"))


def test_wslpath_gets_the_path_as_an_argument(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-x", "state": "Running", "version": 2}])
    assert provision.to_linux_path("lima-x", "C:\\Users\\it's me\\t.sh") == "C:/Users/it's me/t.sh"
    assert fake_wsl.calls()[-1] == ["-d", "lima-x", "--exec", "bash", "-c", 'wslpath -u "$1"', "wslpath",
                                    "C:\\Users\\it's me\\t.sh"]


# -- SSH address discovery, in Lima's order ---------------------------------------------------------


def running(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-x", "state": "Running", "version": 2}])


def probes(fake_wsl: FakeWSL) -> list[list[str]]:
    return [c[3:] for c in fake_wsl.calls() if c[:3] == ["-d", "lima-x", "--exec"]]


def test_hostname_I_first(fake_wsl: FakeWSL) -> None:
    running(fake_wsl)
    fake_wsl.behave(ip="172.28.1.5")
    assert sshaddress.discover("x") == "172.28.1.5"
    assert probes(fake_wsl) == [["bash", "-c", "hostname -I | cut -d ' ' -f1"]]


def test_without_bash_ip_route_is_next(fake_wsl: FakeWSL) -> None:
    running(fake_wsl)
    fake_wsl.behave(shell="busybox", ip="172.28.1.6")
    assert sshaddress.discover("x") == "172.28.1.6"
    assert probes(fake_wsl) == [list(sshaddress.PROBES[0]), list(sshaddress.PROBES[1])]


def test_hostname_i_last_and_loopback_refused(fake_wsl: FakeWSL, monkeypatch: pytest.MonkeyPatch) -> None:
    running(fake_wsl)
    fake_wsl.behave(shell="busybox", ip="not-an-ip", hostname_i="127.0.1.1")
    with pytest.raises(DriverError, match="failed to get the IP address of instance 'x'"):
        sshaddress.discover("x")
    assert probes(fake_wsl) == [list(p) for p in sshaddress.PROBES]
    fake_wsl.behave(shell="busybox", ip="not-an-ip", hostname_i="172.28.1.7")
    assert sshaddress.discover("x") == "172.28.1.7"


def test_basedisk_comes_from_the_downloaded_image(make: Callable) -> None:
    _, inst = make()
    d = Path(inst.dir)
    (d / "image").write_bytes(b"tarball")
    assert provision.ensure_rootfs(d, inst.config) == d / "basedisk"
    assert (d / "basedisk").read_bytes() == b"tarball" and (d / "image").exists()


def test_basedisk_from_a_local_image_location(make: Callable, rootfs: Path) -> None:
    _, inst = make({"images": [{"location": f"file://{rootfs}"}]})
    d = Path(inst.dir)
    provision.ensure_rootfs(d, inst.config)
    assert (d / "basedisk").read_bytes() == rootfs.read_bytes()
    assert os.stat(d / "basedisk").st_ino == os.stat(rootfs).st_ino  # hard-linked, not copied
