"""reverse-sshfs on the host agent's side: the commands on both ends, the mount check, the sftp-server
lookup, and Lima's essential requirements for it. (Mounting for real: tests/e2e/test_cloud_guest_mounts.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lima_core.hostagent import requirements, sshfs
from lima_core.limatype import Instance, LimaYAML
from lima_core.mounts import ResolvedMount


def mount(**kw: object) -> ResolvedMount:
    base: dict[str, object] = dict(index=0, location="/home/me/src dir", mount_point="/home/me/src dir",
                                   writable=False, tag="lima-x", mount_type="reverse-sshfs")
    base.update(kw)
    return ResolvedMount(**base)  # type: ignore[arg-type]


def test_guest_command_is_limas() -> None:
    assert sshfs.guest_command(mount()) == \
        "sshfs ':/home/me/src dir' '/home/me/src dir' -o slave -o ro -o allow_other"
    assert sshfs.guest_command(mount(writable=True, sshfs_cache=False, sshfs_follow_symlinks=True)) == \
        "sshfs ':/home/me/src dir' '/home/me/src dir' -o slave -o allow_other,cache=no,follow_symlinks"
    # The fallback without allow_other keeps the other options.
    assert sshfs.guest_command(mount(writable=True, sshfs_cache=False), allow_other=False) == \
        "sshfs ':/home/me/src dir' '/home/me/src dir' -o slave -o cache=no"


def test_server_command_is_read_only_unless_writable() -> None:
    assert sshfs.server_command("/usr/lib/openssh/sftp-server", mount()) == \
        ["/usr/lib/openssh/sftp-server", "-e", "-d", "/home/me/src dir", "-R"]
    assert sshfs.server_command("sftp-server", mount(writable=True)) == ["sftp-server", "-e", "-d", "/home/me/src dir"]


def test_mounted_check_reads_proc_mounts_escaping(tmp_path: Path) -> None:
    """The check, run by a real sh against a copy of /proc/mounts with an escaped mount point."""
    m = mount(mount_point="/mnt/a b\\c")
    check = sshfs.mounted_check(m).replace("/proc/mounts", str(tmp_path / "mounts"))
    for lines, want in ((":/x /mnt/a\\040b\\134c fuse.sshfs rw 0 0\n", 0),
                        (":/x /mnt/a\\040b\\134c 9p rw 0 0\n", 1),
                        ("proc /proc proc rw 0 0\n:/x /mnt/ab fuse.sshfs rw 0 0\n", 1)):
        (tmp_path / "mounts").write_text(lines)
        assert subprocess.run(["sh", "-c", check]).returncode == want, lines


def test_sftp_server_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(sshfs.SSHFSError, match="sftpDriver 'builtin'.*use 'openssh-sftp-server'"):
        sshfs.find_sftp_server("builtin")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sshfs, "SFTP_SERVER_PATHS", (str(tmp_path / "libexec" / "sftp-server"),))
    with pytest.raises(sshfs.SSHFSError, match="apt install openssh-sftp-server"):
        sshfs.find_sftp_server()
    server = tmp_path / "libexec" / "sftp-server"
    server.parent.mkdir()
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    assert sshfs.find_sftp_server("openssh-sftp-server") == str(server)


def test_missing_sftp_server_is_one_error_naming_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sshfs, "SFTP_SERVER_PATHS", ())
    errors = sshfs.Mounts(tmp_path, "x", [mount(), mount(index=1)]).mount_all()
    assert len(errors) == 1 and "openssh-sftp-server" in errors[0]


def _instance(**cfg: object) -> Instance:
    config = LimaYAML.from_json({"os": "Linux", "plain": False, **cfg})
    return Instance(name="x", dir="/tmp/x", config=config)


def test_essential_requirements_for_reverse_sshfs() -> None:
    """Lima's list: with reverse-sshfs mounts, sshfs installed and fuse allow_other (over the ControlMaster)
    replace the explicit ControlMaster start."""
    names = [r.description for r in requirements.essential(_instance(mountType="reverse-sshfs",
                                                                     mounts=[{"location": "/a"}]), "iid-1")]
    assert names == ["ssh", "user session is ready for ssh", "sshfs binary to be installed",
                     "fuse to allow_other as user"]
    reqs = {r.description: r for r in requirements.essential(_instance(mountType="reverse-sshfs",
                                                                       mounts=[{"location": "/a"}]), "iid-1")}
    assert not reqs["sshfs binary to be installed"].no_master
    assert "/run/lima-fuse-ready" in reqs["fuse to allow_other as user"].script
    assert "iid-1" in reqs["fuse to allow_other as user"].script
    for cfg in ({"mountType": "reverse-sshfs", "mounts": []}, {"mountType": "9p", "mounts": [{"location": "/a"}]},
                {"mountType": "reverse-sshfs", "mounts": [{"location": "/a"}], "plain": True}):
        names = [r.description for r in requirements.essential(_instance(**cfg), "iid-1")]
        assert names[-1] == "Explicitly start ssh ControlMaster" and "sshfs binary to be installed" not in names
