"""virtiofs on QEMU: the command line (shared memory, one vhost-user-fs device per mount), finding and
driving virtiofsd (a fake one here: the real one is booted in tests/e2e/test_cloud_guest_mounts.py), the
user namespace that maps the guest user's uid to the host user's, and `lima stop -f` killing the daemons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from lima_core import instance, pidfile
from lima_core.errors import StartFailed, ValidationError
from lima_core.mounts import ResolvedMount

from lima_driver_qemu import cmdline, idmap, virtiofsd
from lima_driver_qemu.cmdline import Spec

FAKE = """#!/bin/sh
# A stand-in for virtiofsd: answers --version and --help, then listens on the socket it is given.
case "$1" in
--version) echo "virtiofsd 1.0-fake"; exit 0 ;;
--help) echo "{usage}"; exit 0 ;;
esac
echo "args: $*" >&2
sock=""
while [ $# -gt 0 ]; do
  case "$1" in --socket-path=*) sock=${{1#--socket-path=}} ;; --socket-path) sock=$2; shift ;; esac
  shift
done
exec {python} -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); time.sleep(600)' "$sock"
"""


def vfs(i: int, location: str, writable: bool = True, queue: int = 1024) -> ResolvedMount:
    return ResolvedMount(i, location, f"/mnt/{i}", writable, f"lima-tag{i}", "virtiofs", virtiofs_queue_size=queue)


def fake_virtiofsd(tmp_path: Path, flavour: str = "rust") -> Path:
    binary = tmp_path / "bin" / "virtiofsd"
    binary.parent.mkdir(parents=True)
    binary.write_text(FAKE.format(usage="--shared-dir <dir>" if flavour == "rust" else "-o source=PATH",
                                  python=sys.executable))
    binary.chmod(0o755)
    desc = tmp_path / "share" / "qemu" / "vhost-user"
    desc.mkdir(parents=True)
    (desc / "10-other.json").write_text(json.dumps({"type": "gpu", "binary": "/nonexistent"}))
    (desc / "50-fs.json").write_text(json.dumps({"type": "fs", "binary": str(binary)}))
    return binary


def test_command_line_shares_memory_and_adds_a_device_per_mount() -> None:
    d = "/tmp/lq/inst"
    spec = Spec(name="inst", instance_dir=d, arch="x86_64", accel="tcg", cpu="max", memory_mib=1024, cpus=1,
                ssh_local_port=60022, mounts=(vfs(0, "/srv/a"), vfs(2, "/srv/b,c", queue=256)))
    args = cmdline.build(spec)
    assert args[:6] == ["-m", "1024", "-object",
                        "memory-backend-file,id=virtiofs-shm,size=1073741824,mem-path=/dev/shm,share=on",
                        "-numa", "node,memdev=virtiofs-shm"]
    i = args.index("-chardev", args.index("chardev:char-serial"))
    devices = [a for a in args if "virtiofs" in a and a not in args[:6]]
    assert devices == [f"socket,id=char-virtiofs-0,path={d}/virtiofsd-0.sock",
                       "vhost-user-fs-pci,queue-size=1024,chardev=char-virtiofs-0,tag=lima-tag0",
                       f"socket,id=char-virtiofs-2,path={d}/virtiofsd-2.sock",
                       "vhost-user-fs-pci,queue-size=256,chardev=char-virtiofs-2,tag=lima-tag2"]
    assert i < args.index(devices[0]) < args.index("-qmp")  # item 22: after the serial ports, before QMP
    assert "-virtfs" not in args


def test_9p_only_shares_no_memory() -> None:
    spec = Spec(name="i", instance_dir="/d", arch="x86_64", accel="tcg", cpu="max", memory_mib=512, cpus=1,
                mounts=(ResolvedMount(0, "/srv", "/srv", True, "lima-t", "9p"),))
    args = cmdline.build(spec)
    assert "-object" not in args and "-numa" not in args and "-virtfs" in args


def test_find_reads_the_vhost_user_descriptions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = fake_virtiofsd(tmp_path, "c")
    monkeypatch.setattr(virtiofsd, "search_dirs", lambda exe: [tmp_path / "none", tmp_path])
    found = virtiofsd.find("/usr/bin/qemu-system-x86_64")
    assert found == virtiofsd.Binary(str(binary), "c")
    assert virtiofsd.command(found, Path("/i/virtiofsd-0.sock"), "/srv") == \
        [str(binary), "--socket-path=/i/virtiofsd-0.sock", "-o", "source=/srv"]
    rust = virtiofsd.Binary("/usr/libexec/virtiofsd", "rust")
    assert virtiofsd.command(rust, Path("/i/virtiofsd-0.sock"), "/srv") == \
        ["/usr/libexec/virtiofsd", "--socket-path", "/i/virtiofsd-0.sock", "--shared-dir", "/srv"]
    monkeypatch.setattr(virtiofsd, "search_dirs", lambda exe: [tmp_path / "none"])
    with pytest.raises(ValidationError, match="needs virtiofsd.*apt install virtiofsd"):
        virtiofsd.find("/usr/bin/qemu-system-x86_64")


def _daemons(inst_dir: Path) -> list[psutil.Process]:
    out = []
    for path in sorted(inst_dir.glob("virtiofsd-*.pid")):
        status = pidfile.read(path)
        if status.process is not None:
            out.append(status.process)
    return out


def test_one_daemon_per_mount_each_listening_then_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          short_tmp: Path) -> None:
    fake_virtiofsd(tmp_path)
    monkeypatch.setattr(virtiofsd, "search_dirs", lambda exe: [tmp_path])
    binary = virtiofsd.find("qemu")
    inst_dir = short_tmp / "vm"
    inst_dir.mkdir()
    shared = [vfs(0, str(tmp_path)), ResolvedMount(1, "/srv", "/srv", True, "t", "9p"), vfs(2, str(tmp_path))]
    virtiofsd.start(inst_dir, binary, shared, guest_uid=os.getuid())
    try:
        assert sorted(p.name for p in inst_dir.glob("virtiofsd-*.sock")) == ["virtiofsd-0.sock", "virtiofsd-2.sock"]
        daemons = _daemons(inst_dir)
        assert len(daemons) == 2 and all(d.is_running() for d in daemons)
        log = (inst_dir / "virtiofsd-0.log").read_text()
        assert f"args: --socket-path {inst_dir}/virtiofsd-0.sock --shared-dir {tmp_path}\n" in log
    finally:
        virtiofsd.stop(inst_dir)
    assert all(not d.is_running() or d.status() == psutil.STATUS_ZOMBIE for d in daemons)
    assert not list(inst_dir.glob("virtiofsd-*.pid")) and not list(inst_dir.glob("virtiofsd-*.sock"))


def test_a_daemon_that_fails_is_reported_with_its_log(tmp_path: Path, short_tmp: Path) -> None:
    broken = tmp_path / "virtiofsd"
    broken.write_text("#!/bin/sh\necho 'fuse: device not found' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(StartFailed, match=r"virtiofsd for /srv exited with status 1: fuse: device not found"):
        virtiofsd.start(short_tmp, virtiofsd.Binary(str(broken), "rust"), [vfs(0, "/srv")], guest_uid=os.getuid())
    assert not list(short_tmp.glob("virtiofsd-*.pid"))


def test_stop_force_kills_the_daemons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_tmp: Path) -> None:
    """`lima stop -f` kills what lima-core's identity-recorded pid files name, virtiofsd among them (it
    would wait forever for a QEMU that was never started)."""
    fake_virtiofsd(tmp_path)
    monkeypatch.setattr(virtiofsd, "search_dirs", lambda exe: [tmp_path])
    virtiofsd.start(short_tmp, virtiofsd.find("qemu"), [vfs(0, str(tmp_path))], guest_uid=os.getuid())
    (daemon,) = _daemons(short_tmp)
    (short_tmp / "stranger.pid").write_text(f"{os.getpid()}\n")  # no identity record: not ours to kill
    instance.stop_forcibly(short_tmp, "qemu")
    assert psutil.wait_procs([daemon], timeout=5)[1] == [] or daemon.status() == psutil.STATUS_ZOMBIE
    assert not list(short_tmp.glob("*.pid"))


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX only")
def test_the_guest_users_uid_is_the_host_users_in_the_daemons_namespace(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        short_tmp: Path) -> None:
    guest_uid = 4321 if os.getuid() != 4321 else 4322
    why = idmap.unavailable(guest_uid)
    if why:
        pytest.skip(f"no user namespaces here: {why}")
    assert idmap.needed(guest_uid) and not idmap.needed(os.getuid())
    assert idmap.prefix(guest_uid, keep_caps=True)[1:] == [f"--map-user={guest_uid}", f"--map-group={guest_uid}",
                                                          "--keep-caps"]
    fake_virtiofsd(tmp_path)
    monkeypatch.setattr(virtiofsd, "search_dirs", lambda exe: [tmp_path])
    virtiofsd.start(short_tmp, virtiofsd.find("qemu"), [vfs(0, str(tmp_path))], guest_uid=guest_uid)
    try:
        (daemon,) = _daemons(short_tmp)
        uid_map = Path(f"/proc/{daemon.pid}/uid_map").read_text().split()
        gid_map = Path(f"/proc/{daemon.pid}/gid_map").read_text().split()
        assert uid_map == [str(guest_uid), str(os.getuid()), "1"]
        assert gid_map == [str(guest_uid), str(os.getgid()), "1"]
        # In such a namespace the host user's directory is the guest user's.
        inside = subprocess.run([*idmap.prefix(guest_uid), "stat", "-c", "%u:%g", str(tmp_path)],
                                capture_output=True, text=True, check=True)
        assert inside.stdout.strip() == f"{guest_uid}:{guest_uid}"
    finally:
        virtiofsd.stop(short_tmp)


def test_qemu_runs_in_the_namespace_only_for_9p_and_another_uid(tmp_path: Path) -> None:
    from lima_driver_qemu.driver import QemuDriver
    from qemutest import new_instance

    other = 4321 if os.getuid() != 4321 else 4322
    if idmap.unavailable(other):
        pytest.skip(f"no user namespaces here: {idmap.unavailable(other)}")
    base = dict(name="i", instance_dir=str(tmp_path), arch="x86_64", accel="tcg", cpu="max", memory_mib=512, cpus=1)
    ninep = Spec(**base, mounts=(ResolvedMount(0, "/srv", "/srv", True, "t", "9p"),))  # type: ignore[arg-type]
    only_virtiofs = Spec(**base, mounts=(vfs(0, "/srv"),))  # type: ignore[arg-type]
    cases = [(other, idmap.prefix(other))]
    if os.getuid() != 0:  # (root's guest user is never uid 0: lima-core makes it lima, uid 1000)
        cases.append((os.getuid(), []))
    for uid, want in cases:
        driver = QemuDriver()
        driver.configure(new_instance(tmp_path / f"u{uid}", {"arch": "x86_64", "user": {"uid": uid},
                                                             "images": [{"location": "x"}]}))
        assert driver._qemu_prefix(ninep.mounts) == want
        assert driver._qemu_prefix(only_virtiofs.mounts) == []
