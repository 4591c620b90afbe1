"""Suspend and resume through the installed `lima` command with real QEMU (TCG): the tiny test guest with a 9p
share, internal and external qemu; and the Debian guest with real cloud-init (image B) when it is built.

What must hold: a file in the guest's tmpfs and a process started before the suspend are there after the
resume; the share is mounted again (and a share in use stops the suspend, the VM running on); the guest's
clock is the host's again (and, on image B, its DNS and a forwarded port work again); suspend -> stop -> start
boots cleanly."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from limae2e import TEMPLATE, status, wait_gone

pytestmark = pytest.mark.vm


def clock_offset(lima, name: str) -> int:
    """The guest's clock minus the host's, in whole seconds (give or take one for the SSH round trip)."""
    before = time.time()
    guest = int(lima("shell", name, "date", "+%s").stdout.strip())
    return guest - round((before + time.time()) / 2)


def suspend_resume_stop_start(lima, home: str, name: str, share: Path | None, mount_point: str,
                              check: Callable[[], None] = lambda: None) -> None:
    """The whole cycle on a started instance; *share* is the host side of the 9p share at *mount_point*; *check*
    runs before the suspend and after the resume."""
    check()
    inst_dir = Path(home) / name
    lima("shell", name, "sh", "-c", "echo in-memory > /tmp/suspend-test")
    sleeper = lima("shell", name, "sh", "-c", "sleep 100000 >/dev/null 2>&1 </dev/null & echo $!").stdout.strip()
    iid = lima("shell", name, "cat", "/run/lima-boot-done").stdout.strip()

    if share is not None:
        # A share in use cannot be unmounted: the suspend stops there and the VM runs on, share and all.
        holder = lima("shell", name, "sh", "-c", f"cd {mount_point} && sleep 1000 >/dev/null 2>&1 </dev/null & "
                                                 "echo $!").stdout.strip()
        r = lima("suspend", name, ok=False)
        assert f"{mount_point} cannot be unmounted in the guest" in r.stderr and "Traceback" not in r.stderr
        assert status(lima, name)["status"] == "Running"
        assert lima("shell", name, "cat", f"{mount_point}/hello.txt").stdout == "hello through 9p\n"
        lima("shell", name, "kill", holder)

    r = lima("suspend", name)
    assert f"Instance '{name}' is suspended (" in r.stderr
    inst = status(lima, name)
    assert inst["status"] == "Suspended"
    assert wait_gone(home) == []
    state = inst_dir / "qemu.savedstate"
    assert state.stat().st_size > 1 << 20
    record = json.loads((inst_dir / "suspended.json").read_text())
    assert record["stateBytes"] == state.stat().st_size
    assert [row[1] for row in record["shares"]] == ([mount_point] if share is not None else [])

    time.sleep(3)  # the guest's clock stands still meanwhile
    r = lima("resume", name)
    assert "Resuming the instance" in r.stderr and "READY" in r.stderr
    assert status(lima, name)["status"] == "Running"
    assert lima("shell", name, "cat", "/tmp/suspend-test").stdout == "in-memory\n"
    assert lima("shell", name, "sh", "-c", f"tr '\\0' ' ' </proc/{sleeper}/cmdline").stdout.strip() == "sleep 100000"
    assert lima("shell", name, "cat", "/run/lima-boot-done").stdout.strip() == iid  # the same boot
    assert abs(clock_offset(lima, name)) <= 2
    assert not state.exists() and not (inst_dir / "suspended.json").exists()
    check()
    if share is not None:
        assert lima("shell", name, "cat", f"{mount_point}/hello.txt").stdout == "hello through 9p\n"
        assert f" {mount_point} 9p rw," in lima("shell", name, "cat", "/proc/mounts").stdout
        lima("shell", name, "sh", "-c", f"echo from-the-resumed-guest > {mount_point}/back.txt")
        assert (share / "back.txt").read_text() == "from-the-resumed-guest\n"

    # Suspend -> stop: the saved state is discarded; the next start boots afresh and cleanly.
    lima("suspend", name)
    r = lima("stop", name)
    assert "discarding its saved state" in r.stderr
    assert status(lima, name)["status"] == "Stopped" and not state.exists()
    r = lima("start", name, timeout=660)
    assert "Starting the instance" in r.stderr and "READY" in r.stderr
    assert lima("shell", name, "test", "-e", "/tmp/suspend-test", ok=None).returncode == 1
    assert lima("shell", name, "cat", "/run/lima-boot-done").stdout.strip() != iid
    if share is not None:
        assert lima("shell", name, "cat", f"{mount_point}/back.txt").stdout == "from-the-resumed-guest\n"
    lima("stop", name)
    assert wait_gone(home) == []


def test_tiny_guest_with_a_9p_share(lima, lima_env: dict[str, str], tmp_path: Path) -> None:
    home = lima_env["LIMA_HOME"]
    share = tmp_path / "share"
    share.mkdir(mode=0o777)
    share.chmod(0o777)  # the guest user writes there (9p passes the host's permissions through)
    (share / "hello.txt").write_text("hello through 9p\n")
    mounts = json.dumps([{"location": str(share), "mountPoint": "/mnt/host", "writable": True}])
    lima("create", "--name", "sus", "--set", f".mounts = {mounts}", str(TEMPLATE))
    lima("start", "sus")
    suspend_resume_stop_start(lima, home, "sus", share, "/mnt/host")
    # A suspended instance is deleted without -f: nothing runs.
    lima("start", "sus")
    lima("suspend", "sus")
    assert "its saved state went with it" in lima("delete", "sus").stderr
    assert not (Path(home) / "sus").exists()


def test_tiny_guest_external_driver(lima, lima_env: dict[str, str], tmp_path: Path) -> None:
    lima_env["LIMA_EXTERNAL_DRIVERS"] = "qemu"
    share = tmp_path / "share"
    share.mkdir(mode=0o777)
    share.chmod(0o777)
    (share / "hello.txt").write_text("hello through 9p\n")
    mounts = json.dumps([{"location": str(share), "mountPoint": "/mnt/ext", "writable": True}])
    lima("create", "--name", "susx", "--set", f".mounts = {mounts}", str(TEMPLATE))
    assert "with external VM driver 'qemu'" in lima("start", "susx").stderr
    suspend_resume_stop_start(lima, lima_env["LIMA_HOME"], "susx", share, "/mnt/ext")


@pytest.mark.timeout(1500)  # two boots of image B under TCG (the first with cloud-init's first-boot work)
def test_cloud_init_guest_with_a_9p_share(lima, lima_env: dict[str, str], tmp_path: Path) -> None:
    """Image B: systemd, cloud-init (which writes the share to fstab), OpenSSH, sudo."""
    guests = pytest.importorskip("guests", reason="image B's helpers (tests/guests.py) are not in this tree")
    found = guests.find_cloud_guest()
    if isinstance(found, str):
        pytest.skip(found)
    share = tmp_path / "share"
    share.mkdir(mode=0o777)
    share.chmod(0o777)  # the guest user writes there (9p passes the host's permissions through)
    (share / "hello.txt").write_text("hello through 9p\n")
    mounts = json.dumps([{"location": str(share), "mountPoint": "/mnt/host", "writable": True}])
    lima("create", "--name", "susb", "--set", f".mounts = {mounts}",
         "--set", '.hostResolver.hosts = {"resume.test": "10.1.2.3"}', str(found.template), timeout=300)
    lima("start", "susb", timeout=660)
    fstab = lima("shell", "susb", "cat", "/etc/fstab").stdout
    # cloud-init wrote the share to fstab (the resume mounts it from lima-core's own record all the same)
    assert any(line.split()[1:3] == ["/mnt/host", "9p"] for line in fstab.splitlines()), fstab

    # A web server in the guest, forwarded to the same port on the host by Lima's default rule through the
    # guest agent; it runs on through the suspend, and the resumed guest agent reports it again.
    web = free_port()
    lima("shell", "susb", "sh", "-c", f"cd /tmp && nohup python3 -m http.server {web} --bind 127.0.0.1 "
                                      ">/dev/null 2>&1 </dev/null &")

    def dns_and_forward() -> None:
        # The guest's DNS goes to the host agent's server, on the ports of its boot: a resumed guest's too.
        assert lima("shell", "susb", "getent", "hosts", "resume.test").stdout.split()[:1] == ["10.1.2.3"]
        assert http_status(web, within=60) == 200

    suspend_resume_stop_start(lima, lima_env["LIMA_HOME"], "susb", share, "/mnt/host", dns_and_forward)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, within: float) -> int:
    """The status of GET / on the host's *port*, once something answers there (a forward may take a moment)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                return response.status
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
