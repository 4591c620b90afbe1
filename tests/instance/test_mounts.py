"""mounts: location and mountPoint templates as Lima's FillDefault expands them, validation, the resolved
options each mount type needs, the fstab rows, and Lima's default mounts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lima_core import cidata, limayaml, mounts, templates
from lima_core.cidata import userdata
from lima_core.errors import ConfigError
from lima_core.limatype import Info
from lima_core.testing.conformance import new_instance
from lima_core.users import GuestUser

IMAGES = [{"location": "/x.img"}]


def load(inst_dir: Path, **data: Any) -> Any:
    return limayaml.from_data({"images": IMAGES, **data}, str(inst_dir / "lima.yaml"))


def test_mount_point_is_a_guest_template(tmp_path: Path) -> None:
    inst_dir = tmp_path / "dev"
    cfg = load(inst_dir, user={"name": "ann", "uid": 1234}, param={"SUB": "src"},
               mounts=[{"location": str(tmp_path), "mountPoint": "{{.Home}}/{{.Param.SUB}}/{{.Name}}-{{.UID}}"}])
    assert cfg.mounts[0].mount_point == "/home/ann.guest/src/dev-1234"
    # Resolved (the tag, the fstab row) with the expanded path: the driver and cidata agree on it.
    (m,) = mounts.resolve(cfg)
    assert m.mount_point == "/home/ann.guest/src/dev-1234"
    assert m.tag == mounts.mount_tag(str(tmp_path), "/home/ann.guest/src/dev-1234")
    assert limayaml.fill_defaults(cfg, inst_dir).mounts[0].mount_point == m.mount_point  # idempotent


def test_location_is_a_host_template(tmp_path: Path) -> None:
    inst_dir = tmp_path / "dev"
    cfg = load(inst_dir, param={"P": "x"}, mounts=[
        {"location": "{{.Dir}}/share-{{.Param.P}}"}, {"location": "{{.Home}}/src", "mountPoint": "/mnt/src"},
        {"location": "~/tmp/../doc", "mountPoint": "/mnt/doc"}, {"location": "{{.GlobalTempDir}}/{{.Name}}"}])
    home = str(Path.home())
    assert [m.location for m in cfg.mounts] == [f"{inst_dir}/share-x", f"{home}/src", f"{home}/doc", "/tmp/dev"]
    # The mount point defaults to the expanded location.
    assert cfg.mounts[0].mount_point == f"{inst_dir}/share-x"


def test_the_instance_name_comes_from_the_instance_directory(lima_home: Path) -> None:
    data = {"images": IMAGES, "mounts": [{"location": "/srv", "mountPoint": "/mnt/{{.Name}}"}]}
    cfg = limayaml.from_data(data, "template:x", inst_dir=lima_home / "box")
    assert cfg.mounts[0].mount_point == "/mnt/box"


@pytest.mark.parametrize(("mount", "message"), [
    ({"mountPoint": "{{.Nope}}/x"}, r"mounts\[0\].mountPoint: '\{\{.Nope\}\}' names no template field"),
    ({"mountPoint": "{{.Param.MISSING}}"}, r"mounts\[0\].mountPoint: .*there is no Param 'MISSING'"),
    ({"mountPoint": "share"}, r"mounts\[0\].mountPoint: 'share' must be an absolute path in the guest"),
    ({"mountPoint": "~/share"}, r"mountPoint: '~/share' must be an absolute path"),
    ({"mountPoint": "/tmp"}, r"mountPoint: '/tmp' is a system directory"),
    ({"mountPoint": "/home/"}, r"mountPoint: '/home/' is a system directory"),
    ({"mountPoint": "{{.Home}}"}, r"mountPoint: '/home/.*' is a system directory or the guest home"),
    ({"location": "{{if .Name}}x{{end}}"}, r"mounts\[0\].location: the template action '\{\{if .Name\}\}' is not"),
    ({"location": "rel/dir"}, r"mounts\[0\].location: 'rel/dir' must be an absolute path"),
    ({"sshfs": {"cache": "no"}}, r"mounts\[0\].sshfs.cache: expected true or false"),
    ({"sshfs": {"sftpDriver": "mine"}}, r"mounts\[0\].sshfs.sftpDriver: 'mine' is not one of"),
    ({"sshfs": {"typo": 1}}, r"mounts\[0\].sshfs.typo: unknown field"),
    ({"virtiofs": {"queueSize": 1000}}, r"mounts\[0\].virtiofs.queueSize: 1000 must be a power of two"),
    ({"virtiofs": {"queueSize": 2048}}, r"queueSize: 2048 must be a power of two from 1 to 1024"),
])
def test_bad_mounts_are_refused_naming_the_field(tmp_path: Path, mount: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path / "i", mounts=[{"location": str(tmp_path), **mount}])


def test_a_file_is_not_a_mount_location(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"mounts\[0\].location: .*/f' is not a directory"):
        load(tmp_path / "i", mounts=[{"location": str(tmp_path / "f")}])


def test_resolved_options_per_type(tmp_path: Path) -> None:
    cfg = load(tmp_path / "i", mountType="reverse-sshfs", mounts=[
        {"location": "/srv/a", "writable": True, "sshfs": {"cache": False, "followSymlinks": True}},
        {"location": "/srv/b", "virtiofs": {"queueSize": 256}}])
    a, b = mounts.resolve(cfg)
    assert (a.sshfs_cache, a.sshfs_follow_symlinks, a.sftp_driver, a.writable) == (False, True, "", True)
    assert (b.sshfs_cache, b.sshfs_follow_symlinks, b.virtiofs_queue_size, b.writable) == (True, False, 256, False)
    assert a.mount_type == b.mount_type == "reverse-sshfs"


def test_9p_defaults_per_writable(tmp_path: Path) -> None:
    cfg = load(tmp_path / "i", mountType="9p", mounts=[{"location": "/srv/ro"}, {"location": "/srv/rw", "writable": True},
                                                       {"location": "/srv/t", "9p": {"msize": "1MiB", "cache": "none",
                                                                                     "securityModel": "mapped-xattr"}}])
    ro, rw, tuned = mounts.resolve(cfg)
    assert ro.options == "trans=virtio,version=9p2000.L,msize=131072,cache=fscache"
    assert rw.options == "trans=virtio,version=9p2000.L,msize=131072,cache=mmap"
    assert tuned.options == "trans=virtio,version=9p2000.L,msize=1048576,cache=none"
    assert (ro.security_model, tuned.security_model) == ("none", "mapped-xattr")


def test_fstab_rows_for_9p_and_virtiofs_and_none_for_reverse_sshfs(tmp_path: Path) -> None:
    user = GuestUser("u", 1000, "/home/u.guest", "/bin/bash", "u")
    for mount_type, want in (("9p", [["lima-", "/mnt/a", "9p", "rw,trans=virtio,version=9p2000.L,msize=131072,"
                                                              "cache=mmap,nofail", "0", "0"]]),
                             ("virtiofs", [["lima-", "/mnt/a", "virtiofs", "rw,nofail", "0", "0"]]),
                             ("reverse-sshfs", None)):
        inst = new_instance(tmp_path / mount_type, "qemu", {"mountType": mount_type, "mounts": [
            {"location": "/srv/a", "mountPoint": "/mnt/a", "writable": True}]})
        files = cidata.files(inst, Info(name="qemu"), {}, user, ["k"], "iid-1")
        doc = yaml.safe_load(files["user-data"][0])
        rows = doc.get("mounts")
        if want is None:
            assert rows is None
        else:
            assert rows[0][0].startswith("lima-") and len(rows[0][0]) == 21
            assert [["lima-", *row[1:]] for row in rows] == want
        env = dict(line.split("=", 1) for line in files["lima.env"][0].decode().splitlines())
        assert env["LIMA_CIDATA_MOUNTTYPE"] == mount_type and env["LIMA_CIDATA_MOUNTS_0_MOUNTPOINT"] == "/mnt/a"
    assert userdata.mount_rows([], rosetta=False) == []


def test_default_template_mounts_the_home_read_only() -> None:
    """Lima 2.0's templates/_default/mounts.yaml: ~ read-only, nothing else (the /tmp/lima mount is gone)."""
    data = templates.embed(templates.read("template:_default/mounts"))
    assert data["mounts"] == [{"location": "~"}]
    cfg = limayaml.from_data({"images": IMAGES, **data}, "template:default")
    assert [(m.location, m.mount_point, m.writable) for m in cfg.mounts] == [
        (str(Path.home()), str(Path.home()), False)]


def test_boot_script_makes_reverse_sshfs_mount_points_the_users(tmp_path: Path) -> None:
    """boot.Linux/25-guestagent-base.sh, run by a real sh: each mount point made (parents too) and given to
    the user; nothing for other mount types."""
    script = Path(cidata.SCRIPTS / "boot.Linux" / "25-guestagent-base.sh")
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    points = [tmp_path / "a" / "deep" / "share", tmp_path / "with space"]
    env = {"PATH": "/usr/bin:/bin", "LIMA_CIDATA_USER": me, "LIMA_CIDATA_UID": str(os.getuid()),
           "LIMA_CIDATA_MNT": str(tmp_path / "cidata"),  # holds no lima-guestagent: the script installs none
           "LIMA_CIDATA_MOUNTS": "2", "LIMA_CIDATA_MOUNTS_0_MOUNTPOINT": str(points[0]),
           "LIMA_CIDATA_MOUNTS_1_MOUNTPOINT": str(points[1])}
    subprocess.run(["sh", str(script)], env={**env, "LIMA_CIDATA_MOUNTTYPE": "9p"}, check=True)
    assert not any(p.exists() for p in points)
    subprocess.run(["sh", str(script)], env={**env, "LIMA_CIDATA_MOUNTTYPE": "reverse-sshfs"}, check=True)
    assert all(p.is_dir() and p.stat().st_uid == os.getuid() for p in points)
