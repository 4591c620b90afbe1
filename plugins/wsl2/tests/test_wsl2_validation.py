"""validate and the host check: Lima's wsl2 rules, with a message per kind of image."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from lima_driver_wsl2 import validation
from wsl2_helpers import FakeWSL

from lima_core.errors import DriverError, HostUnsupported, ValidationError
from lima_core.limatype import host_arch

OTHER_ARCH = "aarch64" if host_arch() == "x86_64" else "x86_64"


@pytest.mark.skipif(sys.platform == "win32", reason="checks a non-Windows host")
def test_wrong_os_is_refused_in_one_sentence(make: Callable) -> None:
    host, _ = make()
    message = "wsl2 needs Windows 10 (build 19041) or Windows 11; this host runs Linux"
    for hook in (host.validate, host.check_host):
        with pytest.raises(HostUnsupported) as err:
            hook()
        assert err.value.message == message


def test_a_configured_wsl_exe_is_the_hosts_wsl(make: Callable, fake_wsl: FakeWSL) -> None:
    host, _ = make()
    host.check_host()
    host.validate()


def test_a_configured_wsl_exe_that_does_not_exist(make: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMA_WSL_EXE", "/nonexistent/wsl.exe")
    host, _ = make()
    with pytest.raises(DriverError, match=r"cannot run \$LIMA_WSL_EXE=/nonexistent/wsl.exe: not found"):
        host.check_host()


@pytest.mark.parametrize("location", [
    "https://example.com/rootfs.tar", "rootfs.tar.gz", "rootfs.tar.xz", "rootfs.tar.bz2", "rootfs.tar.zst",
    "rootfs.tar.zstd", "rootfs.tgz", "rootfs.txz", "rootfs.tbz2", "rootfs.tzst", "ROOTFS.TAR.GZ",
    "https://example.com/finch-rootfs-production-amd64-1771357941.tar.gz?download=1", "file:///C:/x/rootfs.tar",
    "C:\\Users\\me\\rootfs.tar.gz"])
def test_root_filesystem_tarballs_are_accepted(location: str) -> None:
    assert validation.image_problem(location) is None


@pytest.mark.parametrize("location, why", [
    ("https://cloud-images.ubuntu.com/x/ubuntu-server-cloudimg-amd64.img", "it is a disk image (a VM disk)"),
    ("disk.img.gz", "it is a disk image (a VM disk)"),
    ("fedora.qcow2", "it is a QCOW2 disk image (a VM disk for qemu)"),
    ("fedora.qcow2.xz", "it is a QCOW2 disk image"),
    ("alpine.raw", "it is a raw disk image (a VM disk)"),
    ("alpine.raw.zst", "it is a raw disk image"),
    ("install.iso", "it is an ISO 9660 installer image"),
    ("UniversalMac_15.0_Restore.ipsw", "it is a macOS restore image (for vz)"),
    ("root.squashfs", "it is a SquashFS image; WSL imports tar archives only"),
    ("root.squashfs.xz", "it is a SquashFS image"),
    ("disk.vhdx", "only .tar, .tar.gz, .tar.xz, .tar.bz2, .tar.zst"),
    ("rootfs.zip", "only .tar"),
])
def test_other_images_get_their_own_message(make: Callable, fake_wsl: FakeWSL, location: str, why: str) -> None:
    host, _ = make({"images": [{"location": location}]})
    with pytest.raises(ValidationError) as err:
        host.validate()
    assert err.value.message.startswith("unsupported image type for vmType: wsl2, tarball root file system "
                                        f"required: {location!r} (")
    assert why in err.value.message


def test_images_for_another_arch_are_not_checked(make: Callable, fake_wsl: FakeWSL, rootfs: object) -> None:
    host, _ = make({"images": [{"location": str(rootfs)}, {"location": "x.qcow2", "arch": OTHER_ARCH}]})
    host.validate()


@pytest.mark.parametrize("cfg, message", [
    ({"mountType": "virtiofs"}, 'field `mountType` must be "wsl2" for the WSL2 driver, got "virtiofs"'),
    ({"os": "Windows"}, "the WSL2 driver cannot run Windows guests"),
    ({"tpm": True}, "field `tpm` is not supported by the WSL2 driver"),
    ({"arch": OTHER_ARCH}, f'unsupported arch: "{OTHER_ARCH}"'),
    ({"user": {"passwordlessSudo": False}}, "`user.passwordlessSudo: false` is not supported"),
])
def test_refused_configurations(make: Callable, fake_wsl: FakeWSL, cfg: dict, message: str) -> None:
    host, _ = make(cfg)
    with pytest.raises(ValidationError) as err:
        host.validate()
    assert message in err.value.message


def test_configure_fills_vmtype_and_mounttype(make: Callable) -> None:
    _, inst = make()
    assert inst.config.vm_type == "wsl2" and inst.config.mount_type == "wsl2"


def test_warnings(make: Callable, fake_wsl: FakeWSL, caplog: pytest.LogCaptureFixture) -> None:
    host, _ = make({"audio": {"device": "default"}, "video": {"display": "vz"}})
    with caplog.at_level("WARNING", "lima_driver_wsl2"):
        host.validate()
    assert "`audio.device`: default" in caplog.text and "video" in caplog.text
