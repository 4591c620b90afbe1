"""configure's defaults and checks, validate's errors, the CPU model, the firmware lookup."""

from __future__ import annotations

import logging
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from lima_core.errors import ConfigError, DriverError, ValidationError
from lima_core.host import DriverHost
from lima_core.limatype import Instance, LimaYAML

from lima_driver_qemu import config, firmware
from lima_driver_qemu.driver import QemuDriver
from qemutest import new_instance

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 not installed")


def configured(tmp_path: Path, **cfg: Any) -> tuple[DriverHost, Instance]:
    base = {"arch": "x86_64", "cpus": 1, "memory": "512MiB", "disk": "1GiB", "firmware": {"legacyBIOS": True},
            "images": [{"location": "x", "arch": "x86_64"}]}
    base.update(cfg)
    inst = new_instance(tmp_path / "inst", base)
    (tmp_path / "inst").mkdir(exist_ok=True)
    host = DriverHost(QemuDriver(), "qemu")
    host.configure(inst)
    return host, inst


def test_defaults(tmp_path: Path) -> None:
    _, inst = configured(tmp_path)
    cfg = inst.config
    assert cfg is not None
    assert cfg.vm_type == "qemu"
    assert cfg.mount_type == "9p"
    assert cfg.video is not None and cfg.video.vnc is not None and cfg.video.vnc.display == "127.0.0.1:0,to=9"


def test_set_values_are_kept(tmp_path: Path) -> None:
    _, inst = configured(tmp_path, vmType="qemu", mountType="reverse-sshfs", video={"vnc": {"display": "0.0.0.0:3"}})
    assert inst.config is not None and inst.config.mount_type == "reverse-sshfs"
    assert inst.config.video.vnc.display == "0.0.0.0:3"  # type: ignore[union-attr]


def test_cpu_type_moves_into_vm_opts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        _, inst = configured(tmp_path, cpuType={"x86_64": "Haswell", "aarch64": "cortex-a72"},
                             vmOpts={"qemu": {"cpuType": {"aarch64": "max"}}})
    assert inst.config is not None and inst.config.cpu_type is None
    assert inst.config.vm_opts == {"qemu": {"cpuType": {"x86_64": "Haswell", "aarch64": "max"}}}
    assert "conflicts with `vmOpts.qemu.cpuType.aarch64`" in caplog.text
    assert "cpuType" not in inst.config.to_json()


@pytest.mark.parametrize(("files", "want"), [
    ({}, "9p"),  # a new instance
    ({"image": "", "lima-version": "2.2.0"}, "9p"),
    ({"image": "", "lima-version": "0.23.2"}, "reverse-sshfs"),  # created before Lima 1.0
    ({"disk": ""}, "reverse-sshfs"),  # an existing instance without lima-version counts as old
    ({"disk": "", "lima-version": "ab12cd34"}, "9p"),  # unparsable: the latest
])
def test_mount_type_of_old_instances(tmp_path: Path, files: dict[str, str], want: str) -> None:
    d = tmp_path / "inst"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    _, inst = configured(tmp_path)
    assert inst.config is not None and inst.config.mount_type == want


def test_mount_types_unsupported(tmp_path: Path) -> None:
    _, inst = configured(tmp_path, mountTypesUnsupported=["9p"])
    assert inst.config is not None and inst.config.mount_type == "reverse-sshfs"
    with pytest.raises(ConfigError, match="'9p' is listed in `mountTypesUnsupported`"):
        configured(tmp_path, mountType="9p", mountTypesUnsupported=["9p"])


def test_virtiofs_queue_size_default() -> None:
    mount_list = [{"location": "/a"}, {"location": "/b", "virtiofs": {"queueSize": 8}}]
    cfg = LimaYAML.from_json({"mountType": "virtiofs", "mounts": mount_list})
    config.fill_defaults(cfg, Path("/nonexistent"), platform="linux")
    assert [m.virtiofs for m in cfg.mounts or []] == [{"queueSize": 1024}, {"queueSize": 8}]


@pytest.mark.parametrize(("cfg", "message"), [
    ({"arch": "mips"}, "arch 'mips' is not supported"),
    ({"vmOpts": {"qemu": {"minimumVersion": "nine"}}}, "minimumVersion 'nine' is not a semantic version"),
    ({"mountType": "wsl2"}, "field `mountType` must be one of"),
    ({"memory": "lots"}, "memory: 'lots' is not a size"),
])
def test_configure_rejects(tmp_path: Path, cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        configured(tmp_path, **cfg)


def test_mount_types_per_host() -> None:
    assert config.host_mount_types("linux") == ("reverse-sshfs", "9p", "virtiofs")
    assert config.host_mount_types("darwin") == ("reverse-sshfs", "9p")
    assert config.host_mount_types("win32") == ("reverse-sshfs",)


def test_cpu_type_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "host_arch", lambda: "x86_64")
    cfg = LimaYAML.from_json({})
    assert config.cpu_type(cfg, "x86_64", "kvm", "linux") == "host"
    assert config.cpu_type(cfg, "x86_64", "tcg", "linux") == "max"
    assert config.cpu_type(cfg, "aarch64", "tcg", "linux") == "max"
    assert config.cpu_type(cfg, "x86_64", "hvf", "darwin") == "host,-avx512vl,-pdpe1gb"
    assert config.cpu_type(cfg, "x86_64", "whpx", "win32") == "qemu64"
    cfg = LimaYAML.from_json({"vmOpts": {"qemu": {"cpuType": {"x86_64": "Haswell-v4"}}}})
    assert config.cpu_type(cfg, "x86_64", "kvm", "linux") == "Haswell-v4"


@needs_qemu
@pytest.mark.parametrize(("cfg", "message"), [
    ({"additionalDisks": ["nosuch"]}, r"additionalDisks\[0\]: disk 'nosuch' does not exist"),
    ({"networks": [{"lima": "shared"}]}, r"does not support networks\[0\] \(lima: shared\)"),
    ({"tpm": {"enabled": True}}, "does not support tpm"),
    ({"os": "Windows"}, "does not support os: Windows"),
    ({"vmOpts": {"qemu": {"minimumVersion": "99.0.0"}}}, "template requires '99.0.0' or later"),
    ({"vmOpts": {"qemu": {"cpuType": {"x86_64": "no-such-cpu,+x"}}}}, "cpu 'no-such-cpu,\\+x' is not supported"),
])
def test_validate_rejects(tmp_path: Path, cfg: dict[str, Any], message: str) -> None:
    host, _ = configured(tmp_path, **cfg)
    with pytest.raises(ValidationError, match=message):
        host.validate()


@needs_qemu
def test_validate_needs_virtiofsd_for_virtiofs_mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lima_driver_qemu import virtiofsd

    host, _ = configured(tmp_path, mountType="virtiofs", mounts=[{"location": str(tmp_path), "writable": True}])
    monkeypatch.setattr(virtiofsd, "search_dirs", lambda exe: [tmp_path / "nowhere"])
    with pytest.raises(ValidationError, match="mountType virtiofs needs virtiofsd.*use mountType 9p"):
        host.validate()
    monkeypatch.undo()
    try:
        virtiofsd.find(shutil.which("qemu-system-x86_64") or "")
    except ValidationError:
        return  # this host has no virtiofsd
    host.validate()


@needs_qemu
def test_validate_accepts_the_test_guest_config(tmp_path: Path) -> None:
    host, _ = configured(tmp_path, mounts=[{"location": str(tmp_path), "writable": True}],
                         video={"display": "vnc"}, audio={"device": "none"})
    host.validate()


def test_validate_without_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host, _ = configured(tmp_path)
    monkeypatch.setenv("QEMU_SYSTEM_X86_64", "no-such-qemu")
    with pytest.raises(ValidationError, match="no-such-qemu .* was not found in PATH"):
        host.validate()


@needs_qemu
def test_validate_without_firmware(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firmware, "system_candidates", lambda exe, arch: [])
    host, _ = configured(tmp_path, firmware={"legacyBIOS": False})
    with pytest.raises(ValidationError, match="could not find firmware for 'x86_64' .*legacyBIOS"):
        host.validate()


def test_firmware_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "inst"
    d.mkdir()
    fw = tmp_path / "my-code.fd"
    fw.write_bytes(b"\0" * 16)
    monkeypatch.setattr(firmware, "system_candidates", lambda exe, arch: [str(tmp_path / "missing"), str(fw)])
    cfg = LimaYAML.from_json({"firmware": {"legacyBIOS": True}})
    assert firmware.find(cfg, "x86_64", "/usr/bin/qemu-system-x86_64", d) is None
    assert firmware.find(cfg, "ppc64le", "/usr/bin/qemu-system-ppc64", d) is None
    cfg = LimaYAML.from_json({"firmware": {"legacyBIOS": True}})
    assert firmware.find(cfg, "aarch64", "/usr/bin/qemu-system-aarch64", d) == str(fw)  # legacyBIOS ignored
    cfg = LimaYAML.from_json({"firmware": {"images": [
        {"location": "https://example.com/code.fd", "arch": "x86_64"},
        {"location": f"file://{fw}", "arch": "aarch64"},
        {"location": str(fw), "arch": "x86_64", "vmType": "vz"},
        {"location": str(fw), "arch": "x86_64"}]}})
    assert firmware.find(cfg, "x86_64", "/usr/bin/qemu-system-x86_64", d) == str(d / "qemu-efi-code.fd")
    assert (d / "qemu-efi-code.fd").read_bytes() == fw.read_bytes()


def test_firmware_system_candidates() -> None:
    assert firmware.system_candidates("/opt/q/bin/qemu-system-riscv64", "riscv64", home="/h")[:3] == [
        "/h/.local/share/qemu/edk2-riscv-code.fd", "/opt/q/share/qemu/edk2-riscv-code.fd",
        "/opt/q/bin/share/edk2-riscv-code.fd"]


def test_unconfigured_driver_says_so() -> None:
    host = DriverHost(QemuDriver(), "qemu")
    assert host.info().name == "qemu" and host.info().instance_dir == ""
    with pytest.raises(DriverError, match="was not configured"):
        host.validate()


def test_info_and_fixed_answers(tmp_path: Path) -> None:
    host, inst = configured(tmp_path)
    info = host.info()
    assert (info.name, info.vsock_port, info.virtio_port, info.instance_dir) == ("qemu", 0, "io.lima-vm.guest_agent.0",
                                                                                  inst.dir)
    assert info.features.supported_image_formats == ["qcow2", "raw", "vmdk", "vhdx"]
    assert not info.features.static_ssh_port and not info.features.can_run_gui
    # The host's defaults answer these, as Lima's qemu driver would: an external qemu is not asked.
    defaulted = {"create", "delete", "boot_scripts", "forward_guest_agent", "ssh_address", "additional_setup_for_ssh"}
    assert defaulted.isdisjoint(host.implemented)
    # inspect_status looks at QEMU's run state only while qemu.pid names a live QEMU (runstate.py): "" here.
    assert host.inspect_status(inst) == "" and inst.errors == []
    assert host.forward_guest_agent() is False  # the guest agent has a virtio port: no SSH forward
    assert host.ssh_address() == "127.0.0.1"
    assert host.boot_scripts() == {}
    assert host.inspect_status(instance=inst) == ""
    assert host.additional_setup_for_ssh() is None
    with pytest.raises(DriverError, match=r"cannot connect to the guest agent's port .*/ga.sock"):
        host.guest_agent_conn()  # QEMU is not running
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(Path(inst.dir) / "ga.sock"))  # QEMU's end of the port, as QEMU serves it
    server.listen()
    conn, kind = host.guest_agent_conn()
    assert kind == "unix" and server.accept()[0].fileno() >= 0
    conn.close()
    server.close()
    assert host.create() is None and host.delete() is None
    with pytest.raises(DriverError, match="not running"):
        host.display_connection()
    with pytest.raises(DriverError, match="not running"):
        host.change_display_password(password="abcd1234")
    with pytest.raises(DriverError, match="has no disk"):
        host.list_snapshots()


def test_additional_disks_are_not_an_unsupported_feature() -> None:
    from lima_core.limatype import LimaYAML

    from lima_driver_qemu import config

    assert config.unsupported_features(LimaYAML.from_json({"additionalDisks": ["data"]})) == []
