"""The Debian test guest with real cloud-init, booted as Lima boots a cloud image: UEFI firmware (OVMF)
runs GRUB from the disk's EFI system partition. Driven through the installed `lima` command with the
qemu driver; one boot, checked for everything cloud-init must have made from lima-core's cidata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from guests import CloudGuest

NAME = "cloud"
#: not the host user's defaults, so the guest can only have them from lima.yaml via cidata
USER = {"name": "cloudtester", "uid": 2345, "home": "/home/cloudtester.test", "comment": "Cloud Tester"}

#: one ssh session: each line KEY=VALUE
PROBE = r"""
echo "id=$(id -un) $(id -u)"
echo "home=$HOME"
echo "passwd=$(getent passwd "$(id -un)")"
echo "hostname=$(hostname)"
echo "cloud-init=$(cloud-init status --wait | tail -n 1)"
echo "firmware=$([ -d /sys/firmware/efi ] && echo uefi || echo bios)"
echo "root=$(findmnt -no SOURCE /)"
echo "sudo=$(sudo -n id -u)"
echo "user-added-by-cloud-init=$(sudo -n grep -c "Adding user $(id -un)" /var/log/cloud-init.log)"
echo "host-keys=$(ls /etc/ssh/ssh_host_*_key.pub | wc -l)"
echo "machine-id=$(wc -c </etc/machine-id)"
"""


def test_cloud_guest_templates(cloud_guest: CloudGuest, lima) -> None:
    """Both templates validate, and the direct-kernel one boots the kernel the way the UEFI disk's GRUB does."""
    for template in (cloud_guest.template, cloud_guest.uefi_template):
        lima("template", "validate", str(template))
    direct = yaml.safe_load(cloud_guest.template.read_text())["images"][0]
    assert direct["kernel"]["cmdline"] == cloud_guest.manifest["kernel_cmdline"]
    assert f"linux /vmlinuz {cloud_guest.manifest['kernel_cmdline']}\n" in cloud_guest.manifest["uefi_layout"]["grub_cfg"]
    uefi = yaml.safe_load(cloud_guest.uefi_template.read_text())
    assert "kernel" not in uefi["images"][0] and not (uefi.get("firmware") or {}).get("legacyBIOS")


@pytest.mark.vm
def test_cloud_guest_uefi_boot(cloud_guest: CloudGuest, lima, lima_env: dict[str, str]) -> None:
    lima("create", "--name", NAME, "--set", f".user = {json.dumps(USER)}", str(cloud_guest.uefi_template))
    user = yaml.safe_load((Path(lima_env["LIMA_HOME"]) / NAME / "lima.yaml").read_text())["user"]
    assert {k: user[k] for k in USER} == USER

    r = lima("start", NAME, timeout=660)
    assert "READY" in r.stderr

    r = lima("shell", NAME, "sh", "-c", PROBE, timeout=300)
    got = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    # SSH works as the user cloud-init created from cidata, with lima.yaml's name, uid and home.
    assert got["id"] == f"{user['name']} {user['uid']}"
    assert got["home"] == user["home"]
    name, _x, uid, _gid, comment, home, shell = got["passwd"].split(":")
    assert (name, int(uid), comment, home, shell) == (user["name"], user["uid"], user["comment"], user["home"],
                                                       "/bin/bash")
    assert int(got["user-added-by-cloud-init"]) >= 1, "the image must not have the user before cloud-init"
    assert got["sudo"] == "0"
    assert got["hostname"] == f"lima-{NAME}"
    assert got["cloud-init"] == "status: done", r.stdout
    # Booted through UEFI from the GPT disk's second (root) partition.
    assert got["firmware"] == "uefi"
    assert got["root"] == "/dev/vda2"
    # What the image leaves to first boot was made: SSH host keys, the machine id.
    assert int(got["host-keys"]) >= 1
    assert got["machine-id"] == "33"

    lima("stop", NAME, timeout=120)
    assert json.loads(lima("list", "--format", "json", NAME).stdout)["status"] == "Stopped"
