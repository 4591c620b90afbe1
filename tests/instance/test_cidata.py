"""cidata: the ISO's label and files, boot-script keys, the noCloudInit directory form."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pycdlib
import pytest
import yaml

from lima_core import cidata
from lima_core.errors import ConfigError
from lima_core.limatype import DriverFeatures, Info
from lima_core.testing.conformance import new_instance
from lima_core.users import GuestUser

USER = GuestUser(name="alice", uid=1000, home="/home/alice.guest", shell="/bin/bash", comment="Alice")


def read_iso(path: Path) -> dict[str, bytes]:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    out = {}
    try:
        for root, _dirs, files in iso.walk(rr_path="/"):
            for name in files:
                buf = io.BytesIO()
                rr = f"{root.rstrip('/')}/{name}"
                iso.get_file_from_iso_fp(buf, rr_path=rr)
                out[rr.lstrip("/")] = buf.getvalue()
        label = iso.pvd.volume_identifier.decode().strip()
    finally:
        iso.close()
    out["<label>"] = label.encode()
    return out


def test_iso_holds_what_the_guest_needs(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "demo", "qemu", {"mounts": [{"location": str(tmp_path), "writable": True}],
                                                    "mountType": "9p", "param": {"GREETING": "it's fine"}})
    result = cidata.generate(inst, Info(name="qemu"), {"boot.Linux/10-driver.sh": b"#!/bin/sh\necho hi\n"},
                             USER, ["ssh-ed25519 AAAAkey alice@host"], 60022)
    files = read_iso(result.path)
    assert files["<label>"] == b"cidata"
    assert set(files) >= {"user-data", "meta-data", "network-config", "lima.env", "param.env", "boot.sh",
                          "boot/05-lima-mounts.sh", "boot.Linux/10-driver.sh", "ssh_authorized_keys"}
    user_data = yaml.safe_load(files["user-data"])
    assert files["user-data"].startswith(b"#cloud-config\n")
    assert user_data["users"][0]["name"] == "alice"
    assert user_data["users"][0]["ssh-authorized-keys"] == ["ssh-ed25519 AAAAkey alice@host"]
    assert "/mnt/lima-cidata/boot.sh" in user_data["bootcmd"][0]
    meta = yaml.safe_load(files["meta-data"])
    assert meta == {"instance-id": result.instance_id, "local-hostname": "lima-demo"}
    env = files["lima.env"].decode()
    assert f"LIMA_CIDATA_IID='{result.instance_id}'" in env
    assert "LIMA_CIDATA_MOUNTS='1'" in env and "LIMA_CIDATA_MOUNT_0_TYPE='9p'" in env
    assert "PARAM_GREETING='it'\\''s fine'" in files["param.env"].decode()
    assert (tmp_path / "demo" / "cloud-config.yaml").read_bytes() == files["user-data"]


def test_iso_keeps_exec_bits(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "x", "qemu")
    result = cidata.generate(inst, Info(name="qemu"), {}, USER, ["ssh-ed25519 AAAA k"], 22222)
    iso = pycdlib.PyCdlib()
    iso.open(str(result.path))
    try:
        mode = iso.get_record(rr_path="/boot.sh").rock_ridge.get_file_mode()
    finally:
        iso.close()
    assert mode & 0o111


def test_boot_sh_runs_scripts_in_order_and_marks_boot_done(tmp_path: Path) -> None:
    """Run the generated boot.sh with a POSIX sh against an unpacked cidata."""
    inst = new_instance(tmp_path / "x", "fake", {"mountType": "9p"})
    mnt = tmp_path / "mnt"
    run = tmp_path / "run"
    run.mkdir()
    scripts = {"boot.Linux/20-second.sh": f"#!/bin/sh\necho second >> {tmp_path}/order\n".encode(),
               "boot.Linux/10-first.sh": f"#!/bin/sh\necho first >> {tmp_path}/order\nexit 3\n".encode()}
    content = cidata.files(inst, Info(name="fake"), scripts, USER, ["k"], "iid-42", 2222)
    for rel, (data, mode) in content.items():
        p = mnt / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(mode)
    boot = (mnt / "boot.sh").read_text().replace("/run/", f"{run}/")
    (mnt / "boot.sh").write_text(boot)
    proc = subprocess.run(["sh", str(mnt / "boot.sh")], env={"LIMA_CIDATA_MNT": str(mnt), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert proc.returncode == 1  # one script failed; the boot still completes
    assert "10-first.sh failed with status 3" in proc.stderr
    assert (tmp_path / "order").read_text().split() == ["first", "second"]
    assert (run / "lima-boot-done").read_text().strip() == "iid-42"


@pytest.mark.parametrize(("key", "ok"), [
    ("boot.Linux/05-x.sh", True), ("boot.Darwin/a", True), ("bare.sh", True),
    ("etc/passwd", False), ("boot./x", False), ("boot.Linux/a/b", False), ("boot.Linux/", False),
])
def test_boot_script_keys(key: str, ok: bool) -> None:
    if ok:
        out = cidata.normalize_boot_scripts({key: b""})
        assert list(out)[0].startswith("boot.")
    else:
        with pytest.raises(ConfigError, match="invalid boot script key"):
            cidata.normalize_boot_scripts({key: b""})


def test_no_cloud_init_gets_a_directory(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "w", "wsl2")
    info = Info(name="wsl2", features=DriverFeatures(no_cloud_init=True))
    result = cidata.generate(inst, info, {}, USER, ["ssh-ed25519 AAAA k"], 22)
    assert result.path == tmp_path / "w" / "cidata" and result.path.is_dir()
    assert (result.path / "ssh_authorized_keys").read_text() == "ssh-ed25519 AAAA k\n"
    assert "LIMA_CIDATA_NO_CLOUD_INIT='1'" in (result.path / "lima.env").read_text()
    assert not (tmp_path / "w" / "cidata.iso").exists()
