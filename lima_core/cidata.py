"""cidata: what the guest reads at boot (cloud-init NoCloud data plus Lima's scripts).

``cidata.iso`` is an ISO 9660 volume labelled ``cidata`` (Rock Ridge keeps
names and exec bits), built with pycdlib. Drivers whose Info says
``noCloudInit`` get the same files as a ``cidata/`` directory instead, plus
``ssh_authorized_keys``. The volume holds:

- ``user-data``: cloud-config creating the user with the SSH keys; its
  ``bootcmd`` mounts the volume at ``/mnt/lima-cidata`` and runs ``boot.sh``;
- ``meta-data`` (instance-id, local-hostname) and ``network-config``;
- ``lima.env`` (``LIMA_CIDATA_*``) and ``param.env`` (``param:``);
- ``boot.sh``, which runs ``boot/*`` then the driver's ``boot.<OS>/*`` scripts
  and finally writes this boot's instance id to ``/run/lima-boot-done``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import shutil
import time
from pathlib import Path

import pycdlib

from . import filenames, mounts
from .errors import ConfigError
from .limatype import Info, Instance
from .network import SLIRP_DNS, SLIRP_GATEWAY, SLIRP_GUEST_IP, SLIRP_NETWORK, mac_address
from .users import GuestUser

log = logging.getLogger("lima_core")

VOLUME_LABEL = "cidata"
GUEST_MOUNT = "/mnt/lima-cidata"
BOOT_DONE = "/run/lima-boot-done"

BOOT_SH = """#!/bin/sh
# Lima boot script: runs as root at every boot, from the mounted cidata volume.
# Runs boot/* (lima-core's) then boot.<OS>/* (the driver's), in name order,
# and writes this boot's instance id to /run/lima-boot-done.
: "${LIMA_CIDATA_MNT:=/mnt/lima-cidata}"
export LIMA_CIDATA_MNT
set -a
. "${LIMA_CIDATA_MNT}/lima.env"
[ -f "${LIMA_CIDATA_MNT}/param.env" ] && . "${LIMA_CIDATA_MNT}/param.env"
set +a
code=0
for dir in "${LIMA_CIDATA_MNT}/boot" "${LIMA_CIDATA_MNT}/boot.$(uname -s)"; do
	[ -d "$dir" ] || continue
	for script in "$dir"/*; do
		[ -f "$script" ] || continue
		echo "lima-boot: running ${script#"${LIMA_CIDATA_MNT}"/}"
		if [ -x "$script" ]; then "$script"; else sh "$script"; fi || {
			echo "lima-boot: ${script#"${LIMA_CIDATA_MNT}"/} failed with status $?" >&2
			code=1
		}
	done
done
mkdir -p /run
echo "${LIMA_CIDATA_IID}" >/run/lima-ssh-ready
echo "${LIMA_CIDATA_IID}" >/run/lima-boot-done
exit "$code"
"""

MOUNTS_SH = """#!/bin/sh
# Mount the host directories lima.yaml shares over 9p or virtiofs
# (LIMA_CIDATA_MOUNT_<i>_* in lima.env). Already mounted ones are left alone.
i=0
while [ "$i" -lt "${LIMA_CIDATA_MOUNTS:-0}" ]; do
	eval "type=\\${LIMA_CIDATA_MOUNT_${i}_TYPE} tag=\\${LIMA_CIDATA_MOUNT_${i}_TAG}"
	eval "point=\\${LIMA_CIDATA_MOUNT_${i}_MOUNTPOINT} opts=\\${LIMA_CIDATA_MOUNT_${i}_OPTIONS}"
	i=$((i + 1))
	case "$type" in 9p|virtiofs) ;; *) continue ;; esac
	mkdir -p "$point"
	if grep -qs " $point " /proc/mounts; then continue; fi
	mount -t "$type" ${opts:+-o "$opts"} "$tag" "$point" || echo "lima-boot: cannot mount $tag on $point" >&2
done
"""

#: lima-core's own boot scripts, under boot/ in the volume.
CORE_BOOT_SCRIPTS = {"05-lima-mounts.sh": MOUNTS_SH}


@dataclasses.dataclass(frozen=True)
class Cidata:
    """What was generated: where, and this boot's instance id."""

    path: Path
    instance_id: str


def instance_id() -> str:
    """A new instance id for every boot, as Lima's ``iid-<unix time>``."""
    return f"iid-{int(time.time())}"


def normalize_boot_scripts(scripts: dict[str, bytes]) -> dict[str, bytes]:
    """Keys as ``boot.<OS>/<SCRIPT>``; a bare name means Linux (deprecated); other ``/`` keys are errors."""
    out: dict[str, bytes] = {}
    for key, content in scripts.items():
        if "/" not in key:
            log.warning("boot script key %r should be written boot.Linux/%s (a bare name is deprecated)", key, key)
            key = f"boot.Linux/{key}"
        directory, _, name = key.partition("/")
        if not directory.startswith("boot.") or len(directory) <= 5 or not name or "/" in name or name in (".", ".."):
            raise ConfigError(f"invalid boot script key {key!r}: expected boot.<OS>/<SCRIPT>")
        out[key] = content
    return out


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def lima_env(instance: Instance, info: Info, user: GuestUser, iid: str, ssh_local_port: int) -> dict[str, str]:
    cfg = instance.config
    assert cfg is not None
    env = {
        "LIMA_CIDATA_NAME": instance.name,
        "LIMA_CIDATA_IID": iid,
        "LIMA_CIDATA_USER": user.name,
        "LIMA_CIDATA_UID": str(user.uid),
        "LIMA_CIDATA_COMMENT": user.comment,
        "LIMA_CIDATA_HOME": user.home,
        "LIMA_CIDATA_SHELL": user.shell,
        "LIMA_CIDATA_VMTYPE": cfg.vm_type or "",
        "LIMA_CIDATA_SSH_LOCAL_PORT": str(ssh_local_port),
        "LIMA_CIDATA_SLIRP_NETWORK": SLIRP_NETWORK,
        "LIMA_CIDATA_SLIRP_GATEWAY": SLIRP_GATEWAY,
        "LIMA_CIDATA_SLIRP_DNS": SLIRP_DNS,
        "LIMA_CIDATA_SLIRP_IP_ADDRESS": SLIRP_GUEST_IP,
        "LIMA_CIDATA_VSOCK_PORT": str(info.vsock_port),
        "LIMA_CIDATA_VIRTIO_PORT": info.virtio_port,
        "LIMA_CIDATA_PLAIN": "1" if cfg.plain else "",
        "LIMA_CIDATA_ROSETTA_ENABLED": "true" if info.features.rosetta_enabled and not cfg.plain else "false",
        "LIMA_CIDATA_ROSETTA_BINFMT": "true" if info.features.rosetta_bin_fmt and not cfg.plain else "false",
        "LIMA_CIDATA_MOUNTTYPE": cfg.mount_type or "",
    }
    if info.features.no_cloud_init:
        env["LIMA_CIDATA_NO_CLOUD_INIT"] = "1"
    shared = [] if cfg.plain else mounts.resolve(cfg)
    env["LIMA_CIDATA_MOUNTS"] = str(len(shared))
    for m in shared:
        opts = m.options + ("" if m.writable else (",ro" if m.options else "ro"))
        env.update({f"LIMA_CIDATA_MOUNT_{m.index}_MOUNTPOINT": m.mount_point,
                    f"LIMA_CIDATA_MOUNT_{m.index}_TAG": m.tag,
                    f"LIMA_CIDATA_MOUNT_{m.index}_TYPE": m.mount_type,
                    f"LIMA_CIDATA_MOUNT_{m.index}_OPTIONS": opts})
    return env


def user_data(user: GuestUser, pubkeys: list[str]) -> str:
    keys = "".join(f"      - {_yaml_str(k.strip())}\n" for k in pubkeys if k.strip())
    return f"""#cloud-config
# Generated by lima-core. The guest's cloud-init creates the user and runs boot.sh.
growpart:
  mode: auto
  devices: ['/']
users:
  - name: {_yaml_str(user.name)}
    uid: "{user.uid}"
    homedir: {_yaml_str(user.home)}
    shell: {_yaml_str(user.shell)}
    gecos: {_yaml_str(user.comment)}
    sudo: ALL=(ALL) NOPASSWD:ALL
    lock_passwd: true
    ssh-authorized-keys:
{keys}bootcmd:
  - |
    set -eu
    mkdir -p -m 700 {GUEST_MOUNT}
    mount -t iso9660 -o ro /dev/disk/by-label/{VOLUME_LABEL} {GUEST_MOUNT} || true
    LIMA_CIDATA_MNT={GUEST_MOUNT} sh {GUEST_MOUNT}/boot.sh
"""


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def files(instance: Instance, info: Info, boot_scripts: dict[str, bytes], user: GuestUser, pubkeys: list[str],
          iid: str, ssh_local_port: int) -> dict[str, tuple[bytes, int]]:
    """Every file of the volume: path -> (content, mode)."""
    cfg = instance.config
    assert cfg is not None
    env = lima_env(instance, info, user, iid, ssh_local_port)
    out: dict[str, tuple[bytes, int]] = {
        "user-data": (user_data(user, pubkeys).encode(), 0o644),
        "meta-data": (f"instance-id: {iid}\nlocal-hostname: {instance.hostname}\n".encode(), 0o644),
        "network-config": (_network_config(Path(instance.dir)).encode(), 0o644),
        "lima.env": ("".join(f"{k}={_quote(v)}\n" for k, v in env.items()).encode(), 0o644),
        "param.env": ("".join(f"PARAM_{k}={_quote(v)}\n" for k, v in (cfg.param or {}).items()).encode(), 0o644),
        "boot.sh": (BOOT_SH.encode(), 0o755),
        "ssh_authorized_keys": ("".join(k.strip() + "\n" for k in pubkeys).encode(), 0o644),
    }
    for name, script in CORE_BOOT_SCRIPTS.items():
        out[f"boot/{name}"] = (script.encode(), 0o755)
    for key, content in normalize_boot_scripts(boot_scripts).items():
        out[key] = (content, 0o755)
    return out


def _network_config(instance_dir: Path) -> str:
    return f"""version: 2
ethernets:
  eth0:
    match:
      macaddress: '{mac_address(instance_dir)}'
    set-name: eth0
    dhcp4: true
"""


def generate(instance: Instance, info: Info, boot_scripts: dict[str, bytes], user: GuestUser, pubkeys: list[str],
             ssh_local_port: int) -> Cidata:
    """Write cidata for this boot into the instance directory (and cloud-config.yaml for reference)."""
    iid = instance_id()
    content = files(instance, info, boot_scripts, user, pubkeys, iid, ssh_local_port)
    inst_dir = Path(instance.dir)
    (inst_dir / filenames.CLOUD_CONFIG).write_bytes(content["user-data"][0])
    if info.features.no_cloud_init:
        return Cidata(_write_dir(inst_dir / filenames.CIDATA_DIR, content), iid)
    return Cidata(_write_iso(inst_dir / filenames.CIDATA_ISO, content), iid)


def _write_dir(path: Path, content: dict[str, tuple[bytes, int]]) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, (data, mode) in content.items():
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chmod(target, mode)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def _write_iso(path: Path, content: dict[str, tuple[bytes, int]]) -> Path:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, vol_ident=VOLUME_LABEL, rock_ridge="1.09", joliet=3)
    made: set[str] = set()
    for rel in sorted(content):
        data, mode = content[rel]
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                iso.add_directory(_iso_path(directory), rr_name=parts[depth - 1], joliet_path="/" + directory,
                                  file_mode=0o40755)
                made.add(directory)
        iso.add_fp(io.BytesIO(data), len(data), _iso_path(rel), rr_name=parts[-1], joliet_path="/" + rel,
                   file_mode=0o100000 | mode)
    tmp = path.with_name(path.name + ".tmp")
    try:
        iso.write(str(tmp))
    finally:
        iso.close()
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return path


def _iso_path(rel: str) -> str:
    """A level-4 ISO 9660 path (upper case, no version for directories)."""
    return "/" + "/".join(p.upper() for p in rel.split("/"))
