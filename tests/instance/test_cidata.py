"""cidata as Lima writes it: the volume's files, user-data's structure, lima.env's variables and format,
param.env, etc_environment, provision files, and boot.sh run by a real POSIX sh."""

from __future__ import annotations

import io
import os
import re
import subprocess
from pathlib import Path

import pycdlib
import pytest
import yaml

from lima_core import cidata
from lima_core.cidata import env as cienv
from lima_core.errors import ConfigError
from lima_core.limatype import DriverFeatures, Info
from lima_core.testing.conformance import new_instance
from lima_core.users import GuestUser

USER = GuestUser(name="alice", uid=1000, home="/home/alice.guest", shell="/bin/bash", comment="Alice\x07 A.")

#: every variable Lima's boot scripts read (they run with set -u), in Lima's order
LIMA_ENV_NAMES = [
    "LIMA_CIDATA_DEBUG", "LIMA_CIDATA_IID", "LIMA_CIDATA_NAME", "LIMA_CIDATA_USER", "LIMA_CIDATA_UID",
    "LIMA_CIDATA_COMMENT", "LIMA_CIDATA_HOME", "LIMA_CIDATA_SHELL", "LIMA_CIDATA_HOSTHOME_MOUNTPOINT",
    "LIMA_CIDATA_MOUNTS", "LIMA_CIDATA_MOUNTTYPE", "LIMA_CIDATA_DISKS", "LIMA_CIDATA_GUEST_INSTALL_PREFIX",
    "LIMA_CIDATA_UPGRADE_PACKAGES", "LIMA_CIDATA_CONTAINERD_USER", "LIMA_CIDATA_CONTAINERD_SYSTEM",
    "LIMA_CIDATA_SLIRP_DNS", "LIMA_CIDATA_SLIRP_GATEWAY", "LIMA_CIDATA_SLIRP_IP_ADDRESS",
    "LIMA_CIDATA_UDP_DNS_LOCAL_PORT", "LIMA_CIDATA_TCP_DNS_LOCAL_PORT", "LIMA_CIDATA_ROSETTA_ENABLED",
    "LIMA_CIDATA_ROSETTA_BINFMT", "LIMA_CIDATA_SKIP_DEFAULT_DEPENDENCY_RESOLUTION", "LIMA_CIDATA_VMTYPE",
    "LIMA_CIDATA_VSOCK_PORT", "LIMA_CIDATA_VIRTIO_PORT", "LIMA_CIDATA_PLAIN", "LIMA_CIDATA_NO_CLOUD_INIT",
    "LIMA_CIDATA_PASSWORDLESS_SUDO",
]


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


def env_lines(data: bytes) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in data.decode().splitlines()]  # type: ignore[misc]


FULL = {
    "mounts": [{"location": "/srv/share", "mountPoint": "/mnt/share", "writable": True}, {"location": "/srv/ro"}],
    "mountType": "9p",
    "param": {"GREETING": "it's = fine", "B": "2"},
    "env": {"FOO": "bar baz"},
    "timezone": "Europe/Paris",
    "upgradePackages": True,
    "caCerts": {"certs": ["-----BEGIN CERTIFICATE-----\n  ABC \n\n-----END CERTIFICATE-----\n"]},
    "provision": [
        {"mode": "boot", "script": "#!/bin/sh\necho boot $PARAM_GREETING\n"},
        {"mode": "dependency", "script": "#!/bin/sh\necho dep\n", "skipDefaultDependencyResolution": True},
        {"mode": "data", "path": "/etc/{{.User}}.conf", "content": "home={{.Home}}\n", "permissions": "600"},
        {"mode": "system", "script": "#!/bin/sh\necho sys {{.Name}} {{.Param.B}}\n"},
        {"mode": "user", "script": "#!/bin/sh\necho user\n"},
    ],
}


def test_the_volume_holds_limas_files(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "demo", "qemu", FULL)
    result = cidata.generate(inst, Info(name="qemu"), {"boot.Linux/10-driver.sh": b"#!/bin/sh\necho hi\n"},
                             USER, ["ssh-ed25519 AAAAkey alice@host"])
    files = read_iso(result.path)
    assert files["<label>"] == b"cidata"
    assert set(files) >= {
        "user-data", "meta-data", "network-config", "lima.env", "param.env", "etc_environment", "boot.sh",
        "util/compare_version.sh", "util/escape_fstab.sh", "util/unescape_fstab.sh",
        "boot.essential.Linux/00-alpine-user-group.sh", "boot.Linux/07-etc-environment.sh",
        "boot.Linux/30-install-packages.sh", "boot.Linux/10-driver.sh",
        "provision.dependency/00000001", "provision.data/00000002", "provision.system/00000003",
        "provision.user/00000004"}
    assert "ssh_authorized_keys" not in files  # only for noCloudInit
    assert not any(k.startswith("provision.boot/") for k in files)  # boot provisions live in user-data
    # provisions: guest templates expanded
    assert files["provision.system/00000003"] == b"#!/bin/sh\necho sys demo 2\n"
    assert files["provision.data/00000002"] == b"home=/home/alice.guest\n"
    meta = yaml.safe_load(files["meta-data"])
    assert meta == {"instance-id": result.instance_id, "local-hostname": "lima-demo"}
    assert (tmp_path / "demo" / "cloud-config.yaml").stat().st_mode & 0o777 == 0o444


def test_user_data_is_limas_cloud_config(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "demo", "qemu", FULL)
    files = cidata.files(inst, Info(name="qemu"), {}, USER, ["ssh-ed25519 AAAAkey alice@host"], "iid-7")
    text = files["user-data"][0].decode()
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert list(doc) == ["growpart", "package_update", "package_upgrade", "package_reboot_if_required", "mounts",
                         "timezone", "users", "write_files", "manage_resolv_conf", "resolv_conf", "ca_certs",
                         "bootcmd"]
    assert doc["growpart"] == {"mode": "auto", "devices": ["/"]}
    (user,) = doc["users"]  # no "default" entry: the image's own cloud user is never made
    assert user == {"name": "alice", "uid": "1000", "gecos": "Alice A.", "homedir": "/home/alice.guest",
                    "shell": "/bin/bash", "sudo": "ALL=(ALL) NOPASSWD:ALL", "lock_passwd": True,
                    "ssh-authorized-keys": ["ssh-ed25519 AAAAkey alice@host"]}
    (wrapper,) = doc["write_files"]
    assert wrapper["path"] == "/var/lib/cloud/scripts/per-boot/00-lima.boot.sh" and wrapper["permissions"] == "0755"
    assert "mount -o ro,mode=0700,dmode=0700,overriderockperm,exec,uid=0 " in wrapper["content"]
    assert 'exec "${LIMA_CIDATA_MNT}"/boot.sh' in wrapper["content"]
    share, ro = doc["mounts"]
    assert share[1:3] == ["/mnt/share", "9p"] and share[4:] == ["0", "0"] and share[0].startswith("lima-")
    assert share[3] == "rw,trans=virtio,version=9p2000.L,msize=131072,cache=mmap,nofail"
    assert ro[3] == "ro,trans=virtio,version=9p2000.L,msize=131072,cache=fscache,nofail"
    assert doc["timezone"] == "Europe/Paris"
    assert doc["resolv_conf"] == {"nameservers": ["192.168.5.3"]}
    assert doc["ca_certs"] == {"trusted": ["-----BEGIN CERTIFICATE-----\nABC\n-----END CERTIFICATE-----\n"]}
    nic, boot = doc["bootcmd"]
    assert "ip link set" in nic
    assert "PARAM_GREETING=it's = fine" in boot and "echo boot $PARAM_GREETING" in boot
    assert "provision boot/00000000" in boot
    reference = yaml.safe_load((Path(inst.dir) / "cloud-config.yaml").read_text()) if (
        Path(inst.dir) / "cloud-config.yaml").exists() else None
    assert reference is None  # files() writes nothing; generate() writes the reference copy


def test_a_boot_provision_runs_with_its_params_and_records_its_failure(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "demo", "qemu", {"param": {"X": "a b"}, "provision": [
        {"mode": "boot", "script": "#!/bin/sh\necho \"got $PARAM_X\"\nexit 4\n"}]})
    doc = yaml.safe_load(cidata.files(inst, Info(name="qemu"), {}, USER, ["k"], "iid-1")["user-data"][0])
    item = doc["bootcmd"][1].replace("/run/lima-boot-errors", str(tmp_path / "errors"))
    proc = subprocess.run(["sh", "-c", item + "echo after"], capture_output=True, text=True)
    assert proc.stdout == "got a b\nafter\n"  # its exit ends only its own subshell
    assert (tmp_path / "errors").read_text() == "provision boot/00000000 4\n"


def test_lima_env_has_every_variable_in_limas_format(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "demo", "qemu", FULL)
    files = cidata.files(inst, Info(name="qemu", vsock_port=0, virtio_port="io.lima-vm.guest_agent.0"), {}, USER,
                         ["k"], "iid-9")
    pairs = env_lines(files["lima.env"][0])
    names = [k for k, _ in pairs]
    assert [n for n in names if n in LIMA_ENV_NAMES] == LIMA_ENV_NAMES
    got = dict(pairs)
    assert got["LIMA_CIDATA_IID"] == "iid-9" and got["LIMA_CIDATA_DEBUG"] == "false"
    assert got["LIMA_CIDATA_COMMENT"] == "Alice A."  # no control characters
    assert got["LIMA_CIDATA_MOUNTS"] == "2" and got["LIMA_CIDATA_MOUNTS_0_MOUNTPOINT"] == "/mnt/share"
    assert got["LIMA_CIDATA_MOUNTS_1_MOUNTPOINT"] == "/srv/ro"
    assert got["LIMA_CIDATA_MOUNTTYPE"] == "9p" and got["LIMA_CIDATA_DISKS"] == "0"
    assert got["LIMA_CIDATA_DATAFILE_00000002_PATH"] == "/etc/alice.conf"
    assert got["LIMA_CIDATA_DATAFILE_00000002_OWNER"] == "root:root"
    assert got["LIMA_CIDATA_DATAFILE_00000002_PERMISSIONS"] == "600"
    assert got["LIMA_CIDATA_DATAFILE_00000002_OVERWRITE"] == "true"
    assert got["LIMA_CIDATA_UPGRADE_PACKAGES"] == "1" and got["LIMA_CIDATA_PLAIN"] == ""
    assert got["LIMA_CIDATA_SKIP_DEFAULT_DEPENDENCY_RESOLUTION"] == "1"
    assert got["LIMA_CIDATA_PASSWORDLESS_SUDO"] == "1"
    assert got["LIMA_CIDATA_VIRTIO_PORT"] == "io.lima-vm.guest_agent.0"
    assert "LIMA_CIDATA_CONTAINERD_ARCHIVE" not in got  # only when containerd is installed
    for name in ("LIMA_CIDATA_MOUNTS", "LIMA_CIDATA_DISKS", "LIMA_CIDATA_UID", "LIMA_CIDATA_VSOCK_PORT",
                 "LIMA_CIDATA_UDP_DNS_LOCAL_PORT", "LIMA_CIDATA_TCP_DNS_LOCAL_PORT"):
        assert re.fullmatch(r"\d+", got[name]), name
    assert files["param.env"][0] == b"PARAM_B=2\nPARAM_GREETING=it's = fine\n"  # sorted, unquoted
    assert files["etc_environment"][0] == b"#LIMA-START\nFOO=bar baz\n#LIMA-END\n"


def test_a_value_with_a_line_break_is_refused(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "demo", "qemu")
    bad = GuestUser(name="alice", uid=1000, home="/home/a\nb", shell="/bin/sh", comment="")
    with pytest.raises(ConfigError, match="LIMA_CIDATA_HOME: .*line break"):
        cidata.files(inst, Info(name="qemu"), {}, bad, ["k"], "iid-1")


@pytest.mark.parametrize(("host_env", "want"), [
    ({"http_proxy": "http://localhost:3128"}, {"http_proxy": "http://192.168.5.2:3128",
                                                "HTTP_PROXY": "http://192.168.5.2:3128"}),
    ({"HTTPS_PROXY": "http://user:pw@127.0.0.1:8080/"}, {"https_proxy": "http://user:pw@192.168.5.2:8080/",
                                                         "HTTPS_PROXY": "http://user:pw@192.168.5.2:8080/"}),
    ({"no_proxy": "localhost,.corp"}, {"no_proxy": "localhost,.corp", "NO_PROXY": "localhost,.corp"}),
    ({"http_proxy": ""}, {}),  # an empty value removes the proxy
    ({"ftp_proxy": "proxy.example:21"}, {"ftp_proxy": "proxy.example:21", "FTP_PROXY": "proxy.example:21"}),
])
def test_proxies_are_propagated_as_the_guest_reaches_them(host_env: dict[str, str], want: dict[str, str],
                                                          tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "d", "qemu")
    assert inst.config is not None
    assert cienv.guest_environment(inst.config, host_env) == want


def test_propagate_proxy_env_false_keeps_the_hosts_proxies_out(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "d", "qemu", {"propagateProxyEnv": False, "env": {"A": "1"}})
    assert inst.config is not None
    assert cienv.guest_environment(inst.config, {"http_proxy": "http://10.1.1.1:3128"}) == {"A": "1"}


#: lima-core's own boot.<OS>/ scripts: they change /etc, so the tests that run boot.sh on the host leave them out
CORE_BOOT_SCRIPTS = {p.relative_to(cidata.SCRIPTS).as_posix() for p in cidata.SCRIPTS.glob("boot.*/*")}


def _unpack(tmp_path: Path, content: dict[str, tuple[bytes, int]]) -> Path:
    mnt = tmp_path / "mnt"
    for rel, (data, mode) in content.items():
        if rel in CORE_BOOT_SCRIPTS:
            continue
        p = mnt / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(mode)
    return mnt


def test_boot_sh_runs_in_order_records_failures_and_marks_boot_done(tmp_path: Path) -> None:
    """Run boot.sh with a POSIX sh against an unpacked cidata, /run and /var/log moved into tmp_path."""
    order = tmp_path / "order"
    inst = new_instance(tmp_path / "x", "fake", {"provision": [
        {"mode": "system", "script": f"#!/bin/sh\necho system-a >> {order}\necho oops; exit 5\n"},
        {"mode": "system", "script": f"#!/bin/sh\necho system-b PARAM=$PARAM_P >> {order}\n"},
        {"mode": "data", "path": str(tmp_path / "data.txt"), "content": "data!\n", "owner": str(os.getuid()),
         "permissions": "640"},
    ], "param": {"P": "v"}, "env": {"GREETING": "hello"}})
    scripts = {"boot.Linux/20-second.sh": f"#!/bin/sh\necho second $GREETING >> {order}\n".encode(),
               "boot.Linux/10-first.sh": f"#!/bin/sh\necho first >> {order}\nexit 3\n".encode()}
    content = cidata.files(inst, Info(name="fake"), scripts, USER, ["k"], "iid-42")
    mnt = _unpack(tmp_path, content)
    run, logs = tmp_path / "run", tmp_path / "log"
    boot = (mnt / "boot.sh").read_text().replace("RUN=/run", f"RUN={run}").replace(
        "LOGS=/var/log/lima-boot", f"LOGS={logs}")
    (mnt / "boot.sh").write_text(boot)
    proc = subprocess.run(["sh", str(mnt / "boot.sh")], env={"LIMA_CIDATA_MNT": str(mnt), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # scripts failed; the boot still completes
    assert order.read_text().split("\n") == ["first", "second hello", "system-a", "system-b PARAM=v", ""]
    assert (tmp_path / "data.txt").read_text() == "data!\n"
    assert (tmp_path / "data.txt").stat().st_mode & 0o777 == 0o640
    assert (run / "lima-boot-done").read_text().strip() == "iid-42"
    errors = (run / "lima-boot-errors").read_text().splitlines()
    assert errors[0] == f"boot boot.Linux/10-first.sh 3 {logs}/boot.Linux_10-first.sh.log"
    assert errors[1] == f"provision system/00000000 5 {logs}/provision.system_00000000.log"
    assert (logs / "provision.system_00000000.log").read_text() == "oops\n"
    assert "LIMA " in proc.stdout and "WARNING: Failed to execute" in proc.stdout


def test_boot_sh_in_plain_mode_skips_boot_os_scripts(tmp_path: Path) -> None:
    order = tmp_path / "order"
    inst = new_instance(tmp_path / "x", "fake", {"plain": True, "provision": [
        {"mode": "system", "script": f"#!/bin/sh\necho system >> {order}\n"}]})
    scripts = {"boot.Linux/10-first.sh": f"#!/bin/sh\necho first >> {order}\n".encode()}
    mnt = _unpack(tmp_path, cidata.files(inst, Info(name="fake"), scripts, USER, ["k"], "iid-1"))
    run = tmp_path / "run"
    boot = (mnt / "boot.sh").read_text().replace("RUN=/run", f"RUN={run}").replace(
        "LOGS=/var/log/lima-boot", f"LOGS={tmp_path}/log")
    (mnt / "boot.sh").write_text(boot)
    proc = subprocess.run(["sh", str(mnt / "boot.sh")], env={"LIMA_CIDATA_MNT": str(mnt), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert order.read_text() == "system\n"
    assert "Plain mode" in proc.stdout


def test_iso_keeps_exec_bits(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "x", "qemu")
    result = cidata.generate(inst, Info(name="qemu"), {}, USER, ["ssh-ed25519 AAAA k"])
    iso = pycdlib.PyCdlib()
    iso.open(str(result.path))
    try:
        modes = {p: iso.get_record(rr_path=p).rock_ridge.get_file_mode()
                 for p in ("/boot.sh", "/util/compare_version.sh", "/boot.Linux/07-etc-environment.sh")}
    finally:
        iso.close()
    assert all(mode & 0o111 for mode in modes.values()), modes


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
    result = cidata.generate(inst, info, {}, USER, ["ssh-ed25519 AAAA k", "ssh-rsa BBBB j"])
    assert result.path == tmp_path / "w" / "cidata" and result.path.is_dir()
    assert result.path.stat().st_mode & 0o777 == 0o700
    assert (result.path / "ssh_authorized_keys").read_text() == "ssh-ed25519 AAAA k\nssh-rsa BBBB j"
    assert "LIMA_CIDATA_NO_CLOUD_INIT=1\n" in (result.path / "lima.env").read_text()
    assert not (tmp_path / "w" / "cidata.iso").exists()


def test_the_reference_init_for_guests_without_cloud_init_is_shipped() -> None:
    """docs/authors.md tells authors of drivers without cloud-init to copy it; the test guest runs it."""
    import importlib.resources

    init = importlib.resources.files("lima_core.guestinit") / "lima-init"
    assert init.is_file()
    proc = subprocess.run(["sh", "-n", str(init)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    docs = (Path(__file__).resolve().parents[2] / "docs" / "authors.md").read_text()
    assert "lima_core/guestinit/lima-init" in docs and "ro,mode=0700,dmode=0700,overriderockperm" in docs
