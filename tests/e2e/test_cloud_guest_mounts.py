"""Mounts on the Debian test guest with real cloud-init, one instance per mount type (Lima has one
mountType per instance), each booted once and checked for everything it should do:

- the guest user reads the host user's files and writes into the host user's directory, through a
  mountPoint given as a template; the host sees the writes, owned by the host user (who is root in CI:
  the guest user is lima, uid 1000, and the uid mapping of docs/mounts.md makes root's files the guest
  user's for 9p and virtiofs);
- a read-only mount refuses writes;
- with mountInotify, a file written on the host raises an inotify event in the guest;
- 9p and virtiofs come from fstab (cloud-init's mounts), and the 9p mount is back after a guest reboot;
  reverse-sshfs is mounted by the host agent, and mounted again by it after a guest reboot;
- after `lima stop` (9p, reverse-sshfs) or `lima stop -f` (virtiofs, reverse-sshfs) no process of the
  instance is left: no qemu, virtiofsd, ssh running sshfs, or sftp-server; the reverse-sshfs mount comes
  back with the next host agent.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest
import yaml
from guests import CloudGuest

#: run as the guest user in the mount: read the host's file, write new ones, change the host's file
WRITE = r"""
set -e
cd "$1"
echo "whoami=$(id -u):$(id -g)"
echo "read=$(cat from-host.txt)"
echo "host-file-owner=$(stat -c %u:%g from-host.txt)"
echo "dir-owner=$(stat -c %u:%g .)"
echo "from guest" > from-guest.txt
mkdir -p sub && echo nested > sub/nested.txt
echo "appended by guest" >> from-host.txt
ln -sf from-guest.txt link
echo "new-file-owner=$(stat -c %u:%g from-guest.txt)"
echo "link=$(readlink link)"
"""


#: an inotify watcher in the guest (python3 and ctypes: the image has no inotify-tools): $1 the directory,
#: $2 the file its events go to, one "name mask" line each
WATCH = r"""
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
assert libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x2 | 0x4 | 0x8 | 0x100) >= 0
with open(sys.argv[2], "w") as out:
    print("ready", file=out, flush=True)
    while True:
        data, offset = os.read(fd, 4096), 0
        while offset < len(data):
            wd, mask, cookie, size = struct.unpack_from("iIII", data, offset)
            print(data[offset + 16:offset + 16 + size].rstrip(b"\0").decode(), mask, file=out, flush=True)
            offset += 16 + size
"""


def _instance(tmp_path: Path, cloud_guest: CloudGuest, mount_type: str, mounts: list[dict], **more: object) -> Path:
    template = tmp_path / f"{mount_type}.yaml"
    template.write_text(yaml.safe_dump({"base": str(cloud_guest.template), "mountType": mount_type,
                                        "containerd": {"system": False, "user": False}, "mounts": mounts, **more}))
    return template


def _wait_guest_file(lima, name: str, path: str, want: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = lima("shell", name, "cat", path, ok=None).stdout
        if want in text:
            return text
        time.sleep(1)
    raise AssertionError(f"{want!r} not in the guest's {path} after {timeout:g} s: {text!r}")


def _share(tmp_path: Path, name: str) -> Path:
    share = tmp_path / name
    share.mkdir(mode=0o755)
    (share / "from-host.txt").write_text("written on the host\n")
    return share


def _kv(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _check_writes(lima, name: str, share: Path, mount_point: str, *, guest_sees_owner: bool) -> None:
    got = _kv(lima("shell", name, "sh", "-c", WRITE, "sh", mount_point, timeout=300).stdout)
    user = json.loads(lima("list", "--format", "json", name).stdout)["config"]["user"]
    assert got["whoami"].split(":")[0] == str(user["uid"])
    assert got["read"] == "written on the host"
    if guest_sees_owner:
        # The host user's files and directory are the guest user's.
        assert got["host-file-owner"] == got["dir-owner"] == got["new-file-owner"] == got["whoami"], got
    assert got["link"] == "from-guest.txt"
    # The host sees every write, and what the guest user made belongs to the host user.
    assert (share / "from-guest.txt").read_text() == "from guest\n"
    assert (share / "sub" / "nested.txt").read_text() == "nested\n"
    assert (share / "from-host.txt").read_text() == "written on the host\nappended by guest\n"
    assert os.readlink(share / "link") == "from-guest.txt"
    for made in (share / "from-guest.txt", share / "sub", share / "sub" / "nested.txt"):
        assert made.lstat().st_uid == os.getuid(), made


def _read_only(lima, name: str, mount_point: str) -> None:
    r = lima("shell", name, "sh", "-c", f"cat {mount_point}/from-host.txt && touch {mount_point}/nope", ok=False)
    assert r.stdout == "written on the host\n"
    assert "Read-only file system" in r.stderr, r.stderr


def _leftovers(lima_home: str, share: Path) -> list[str]:
    """Processes of the instance still alive (zombies waiting for init are gone)."""
    out = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["status"] != psutil.STATUS_ZOMBIE and (lima_home in cmd or str(share) in cmd):
            out.append(cmd)
    return out


def _no_leftovers(lima_home: str, share: Path) -> None:
    deadline = time.monotonic() + 10
    while _leftovers(lima_home, share) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers(lima_home, share) == []


def _boot_id(lima, name: str) -> str:
    return lima("shell", name, "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()


def _reboot(lima, name: str, check: str) -> str:
    """Reboot the guest from inside; once SSH answers on the new boot and *check* succeeds, its output."""
    before = _boot_id(lima, name)
    lima("shell", name, "sudo", "systemctl", "reboot", ok=None, timeout=60)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(5)
        r = lima("shell", name, "sh", "-c", f"cat /proc/sys/kernel/random/boot_id; {check}", ok=None, timeout=60)
        lines = r.stdout.splitlines()
        if r.returncode == 0 and lines and lines[0] != before:
            return "\n".join(lines[1:])
    raise AssertionError(f"{name}: not back after a reboot with {check!r} holding")


@pytest.mark.vm
@pytest.mark.timeout(1500)  # a first boot and a reboot of a systemd guest under TCG on a loaded machine
def test_9p(cloud_guest: CloudGuest, lima, lima_env, tmp_path: Path) -> None:
    share, ro = _share(tmp_path, "share"), _share(tmp_path, "ro")
    template = _instance(tmp_path, cloud_guest, "9p", [
        {"location": str(share), "mountPoint": "{{.Home}}/share", "writable": True},
        {"location": str(ro), "mountPoint": "/mnt/ro"}])
    lima("create", "--name", "m9p", str(template))
    r = lima("start", "m9p", timeout=900)
    assert "READY" in r.stderr
    home = json.loads(lima("list", "--format", "json", "m9p").stdout)["config"]["user"]["home"]
    mount_point = f"{home}/share"

    fstab = lima("shell", "m9p", "cat", "/etc/fstab").stdout
    rows = [line.split() for line in fstab.splitlines() if line.split()[2:3] == ["9p"]]
    assert [(r[1], r[2]) for r in rows] == [(mount_point, "9p"), ("/mnt/ro", "9p")], fstab
    # Lima's defaults per writable, and cloud-init's mark.
    assert rows[0][3] == "rw,trans=virtio,version=9p2000.L,msize=131072,cache=mmap,nofail,comment=cloudconfig"
    assert rows[1][3] == "ro,trans=virtio,version=9p2000.L,msize=131072,cache=fscache,nofail,comment=cloudconfig"

    _check_writes(lima, "m9p", share, mount_point, guest_sees_owner=True)
    _read_only(lima, "m9p", "/mnt/ro")

    # The rows are in fstab: after a reboot from inside the guest, both are mounted again.
    mounted = _reboot(lima, "m9p", f"findmnt -n -o FSTYPE {mount_point}; findmnt -n -o FSTYPE /mnt/ro")
    assert mounted.split() == ["9p", "9p"]
    assert lima("shell", "m9p", "cat", f"{mount_point}/from-guest.txt").stdout == "from guest\n"

    lima("stop", "m9p", timeout=300)
    _no_leftovers(lima_env["LIMA_HOME"], share)


@pytest.mark.vm
@pytest.mark.timeout(1200)
def test_virtiofs(cloud_guest: CloudGuest, lima, lima_env, tmp_path: Path) -> None:
    share = _share(tmp_path, "share")
    template = _instance(tmp_path, cloud_guest, "virtiofs", [
        {"location": str(share), "mountPoint": "/mnt/share", "writable": True}], mountInotify=True)
    lima("create", "--name", "mvfs", str(template))
    r = lima("start", "mvfs", timeout=900)
    assert "READY" in r.stderr
    inst_dir = Path(lima_env["LIMA_HOME"]) / "mvfs"
    daemons = [p for p in psutil.process_iter(["cmdline"]) if "virtiofsd" in " ".join(p.info["cmdline"] or [])
               and str(inst_dir) in " ".join(p.info["cmdline"] or [])]
    assert daemons, "no virtiofsd runs for the instance"

    fstab = lima("shell", "mvfs", "cat", "/etc/fstab").stdout
    assert any(line.split()[1:4] == ["/mnt/share", "virtiofs", "rw,nofail,comment=cloudconfig"]
               for line in fstab.splitlines() if "virtiofs" in line), fstab
    assert lima("shell", "mvfs", "findmnt", "-n", "-o", "FSTYPE", "/mnt/share").stdout.strip() == "virtiofs"
    _check_writes(lima, "mvfs", share, "/mnt/share", guest_sees_owner=True)

    # mountInotify: a file written on the host raises an inotify event in the guest.
    lima("shell", "mvfs", "sh", "-c", 'nohup python3 -c "$1" /mnt/share /tmp/events </dev/null >/dev/null 2>&1 &',
         "sh", WATCH)
    _wait_guest_file(lima, "mvfs", "/tmp/events", "ready")
    (share / "sub" / "from-host-later.txt").write_text("x")  # below the watched directory: not its event
    (share / "watched.txt").write_text("written on the host, seen by the guest's inotify\n")
    events = _wait_guest_file(lima, "mvfs", "/tmp/events", "watched.txt")
    assert "from-host-later.txt" not in events

    assert "stopped forcibly" in lima("stop", "-f", "mvfs").stderr
    _no_leftovers(lima_env["LIMA_HOME"], share)


@pytest.mark.vm
@pytest.mark.timeout(2400)  # two boots and a reboot
def test_reverse_sshfs(cloud_guest: CloudGuest, lima, lima_env, tmp_path: Path) -> None:
    share, ro = _share(tmp_path, "share"), _share(tmp_path, "ro")
    template = _instance(tmp_path, cloud_guest, "reverse-sshfs", [
        {"location": str(share), "mountPoint": "/mnt/share", "writable": True},
        {"location": str(ro), "mountPoint": "/mnt/ro", "sshfs": {"cache": False}}])
    lima("create", "--name", "mssh", str(template))
    r = lima("start", "mssh", timeout=900)
    assert "READY" in r.stderr
    for shown in ("'sshfs binary to be installed'", "'fuse to allow_other as user'",
                  f"Mounting {share} on /mnt/share (reverse-sshfs)"):
        assert shown in r.stderr, r.stderr

    mounts = lima("shell", "mssh", "cat", "/proc/mounts").stdout
    rows = {line.split()[1]: line.split() for line in mounts.splitlines() if "fuse.sshfs" in line}
    assert rows["/mnt/share"][0] == f":{share}" and "allow_other" in rows["/mnt/share"][3]
    assert rows["/mnt/ro"][3].startswith("ro,")
    assert "sshfs" not in lima("shell", "mssh", "cat", "/etc/fstab").stdout  # the host agent mounts it
    _check_writes(lima, "mssh", share, "/mnt/share", guest_sees_owner=False)
    _read_only(lima, "mssh", "/mnt/ro")
    # Served by the host's sftp-server, one per mount, read-only for the read-only one.
    servers = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])
               if "sftp-server" in " ".join(p.info["cmdline"] or [])]
    assert sorted(s.split("sftp-server", 1)[1] for s in servers if str(tmp_path) in s) == \
        [f" -e -d {ro} -R", f" -e -d {share}"]

    # The guest rebooted: the mount ended with its ssh; the host agent mounts it again.
    mounted = _reboot(lima, "mssh", "grep -c ' /mnt/share fuse.sshfs ' /proc/mounts")
    assert mounted == "1"
    assert lima("shell", "mssh", "cat", "/mnt/share/from-guest.txt").stdout == "from guest\n"

    # The mount dies with the host agent (lima stop: no ssh, no sftp-server left) and comes back with it.
    lima("stop", "mssh", timeout=300)
    _no_leftovers(lima_env["LIMA_HOME"], share)
    r = lima("start", "mssh", timeout=900)
    assert "READY" in r.stderr and f"Mounting {share} on /mnt/share (reverse-sshfs)" in r.stderr
    assert lima("shell", "mssh", "cat", "/mnt/share/from-guest.txt").stdout == "from guest\n"

    lima("stop", "-f", "mssh")
    _no_leftovers(lima_env["LIMA_HOME"], share)
