"""cidata's ``user-data``: the cloud-config that makes the guest Lima's, written with PyYAML.

Keys, in Lima's order: growpart; the package keys (upgradePackages); mounts
(9p and virtiofs rows for fstab); timezone; users (the one Lima user, no
``default`` user); write_files (the per-boot wrapper that mounts cidata and
runs boot.sh); resolv_conf; ca_certs; bootcmd (the NIC-rename workaround,
then each ``mode: boot`` provision).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..limatype import LimaYAML
from ..mounts import ResolvedMount
from ..users import GuestUser

GUEST_MOUNT = "/mnt/lima-cidata"
VOLUME_LABEL = "cidata"
PER_BOOT_WRAPPER = "/var/lib/cloud/scripts/per-boot/00-lima.boot.sh"
#: errors of this boot's scripts, for the host agent (boot.sh writes the same file)
BOOT_ERRORS = "/run/lima-boot-errors"

WRAPPER = f"""#!/bin/sh
# Installed by Lima's cloud-config; cloud-init runs it late at every boot.
# Mounts cidata so that only root can read it (every file root's, 0700) and
# runs its boot.sh.
set -eux
LIMA_CIDATA_MNT="{GUEST_MOUNT}"
LIMA_CIDATA_DEV="/dev/disk/by-label/{VOLUME_LABEL}"
mkdir -p -m 700 "${{LIMA_CIDATA_MNT}}"
mount -o ro,mode=0700,dmode=0700,overriderockperm,exec,uid=0 "${{LIMA_CIDATA_DEV}}" "${{LIMA_CIDATA_MNT}}"
export LIMA_CIDATA_MNT
exec "${{LIMA_CIDATA_MNT}}"/boot.sh
"""

NIC_RENAME = """# Name each NIC as network-config says even where the image named it first
# (seen on Ubuntu 26.04, LP #2136392), then wait for eth0's IPv4 address.
for pair in {pairs}; do
    mac=${{pair%%=*}} want=${{pair#*=}}
    [ -e "/sys/class/net/$want" ] && continue
    for dev in /sys/class/net/*; do
        [ "$(cat "$dev/address" 2>/dev/null)" = "$mac" ] || continue
        name=${{dev##*/}}
        for try in 1 2 3; do
            ip link set "$name" down && ip link set "$name" name "$want" && ip link set "$want" up && break
            sleep 1
        done
    done
done
i=0
while [ "$i" -lt 30 ] && ! ip -4 addr show dev eth0 2>/dev/null | grep -q 'inet '; do
    sleep 1
    i=$((i + 1))
done
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (``|``), so scripts stay readable in the file."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Mapping[str, Any]) -> str:
    return "#cloud-config\n" + yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                                         allow_unicode=True, width=1 << 16)


def mount_rows(mounts: list[ResolvedMount], rosetta: bool) -> list[list[str]]:
    """fstab rows for cloud-init (``[spec, mount point, type, options, "0", "0"]``)."""
    rows = [["vz-rosetta", "/mnt/lima-rosetta", "virtiofs", "defaults", "0", "0"]] if rosetta else []
    for m in mounts:
        mode = "rw" if m.writable else "ro"
        if m.mount_type == "9p":
            rows.append([m.tag, m.mount_point, "9p", f"{mode},{m.options},nofail", "0", "0"])
        elif m.mount_type == "virtiofs":
            rows.append([m.tag, m.mount_point, "virtiofs", f"{mode},nofail", "0", "0"])
    return rows


def ca_certificates(cfg: LimaYAML) -> list[str]:
    """caCerts: each file (read now) and inline cert, as trimmed non-empty lines, duplicates dropped."""
    certs: list[str] = []
    ca = cfg.ca_certs
    if ca is None:
        return certs
    for i, name in enumerate(ca.files or []):
        path = Path(name).expanduser()
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"caCerts.files[{i}]: cannot read {path}: {getattr(exc, 'strerror', exc)}") from None
        certs.append(text)
    certs += list(ca.certs or [])
    out: list[str] = []
    for cert in certs:
        lines = "\n".join(line.strip() for line in cert.splitlines() if line.strip()) + "\n"
        if lines not in out:
            out.append(lines)
    return out


def boot_command(index: int, script: str, params: Mapping[str, str]) -> str:
    """A ``mode: boot`` provision as a bootcmd item: its PARAM_* exported (cidata is not mounted yet), the
    script in a subshell (its ``exit`` ends only itself), and its failure recorded for the host agent."""
    exports = "".join(f"PARAM_{k}={v}\n" for k, v in sorted(params.items()))
    body = script if script.endswith("\n") else script + "\n"
    return (f"# provision {index} (mode: boot)\n"
            "(\n"
            "while IFS= read -r line; do [ -n \"$line\" ] && export \"$line\"; done <<'LIMA_PARAM_EOF'\n"
            f"{exports}LIMA_PARAM_EOF\n"
            f"{body}"
            f") || {{ status=$?; mkdir -p /run; echo \"provision boot/{index:08d} $status\" >>{BOOT_ERRORS}; }}\n")


def user_data(cfg: LimaYAML, user: GuestUser, pubkeys: list[str], mounts: list[ResolvedMount], *,
              boot_scripts: list[tuple[int, str]], nics: list[tuple[str, str]], dns: list[str], rosetta: bool,
              reference: bool = False) -> str:
    """The user-data text. *reference*: the copy kept as cloud-config.yaml (no write_files, mounts or DNS)."""
    doc: dict[str, Any] = {"growpart": {"mode": "auto", "devices": ["/"]}}
    if cfg.upgrade_packages:
        doc.update(package_update=True, package_upgrade=True, package_reboot_if_required=True)
    rows = mount_rows(mounts, rosetta)
    if rows and not reference:
        doc["mounts"] = rows
    if cfg.timezone:
        doc["timezone"] = cfg.timezone
    entry: dict[str, Any] = {"name": user.name, "uid": str(user.uid)}
    comment = "".join(c for c in user.comment if c.isprintable())
    if comment:
        entry["gecos"] = comment
    passwordless = cfg.user is None or cfg.user.passwordless_sudo is not False
    entry.update(homedir=user.home, shell=user.shell,
                 sudo="ALL=(ALL) NOPASSWD:ALL" if passwordless else "ALL=(ALL) ALL",
                 lock_passwd=passwordless,
                 **{"ssh-authorized-keys": [k.strip() for k in pubkeys if k.strip()]})
    doc["users"] = [entry]
    if not reference:
        doc["write_files"] = [{"path": PER_BOOT_WRAPPER, "owner": "root:root", "permissions": "0755",
                               "content": WRAPPER}]
        if dns:
            doc["manage_resolv_conf"] = True
            doc["resolv_conf"] = {"nameservers": list(dns)}
    certs = ca_certificates(cfg)
    remove = bool(cfg.ca_certs and cfg.ca_certs.remove_defaults)
    if certs or remove:
        doc["ca_certs"] = ({"remove_defaults": True} if remove else {}) | ({"trusted": certs} if certs else {})
    pairs = " ".join(f"{mac}={name}" for mac, name in nics)
    doc["bootcmd"] = [NIC_RENAME.format(pairs=pairs)] + [boot_command(i, s, cfg.param or {}) for i, s in boot_scripts]
    return dump(doc)


def network_config(nics: list[tuple[str, str]], dns: list[str]) -> str:
    """network-config v2: eth0 (the user network) with route metric 200, by MAC."""
    ethernets: dict[str, Any] = {}
    for mac, name in nics:
        nic: dict[str, Any] = {"match": {"macaddress": mac}, "set-name": name, "dhcp4": True,
                               "dhcp4-overrides": {"route-metric": 200 if name == "eth0" else 100},
                               "dhcp-identifier": "mac"}
        if name == "eth0" and dns:
            nic["nameservers"] = {"addresses": list(dns)}
        ethernets[name] = nic
    return yaml.dump({"version": 2, "ethernets": ethernets}, Dumper=_Dumper, sort_keys=False)


def meta_data(iid: str, hostname: str) -> str:
    return yaml.dump({"instance-id": iid, "local-hostname": hostname}, Dumper=_Dumper, sort_keys=False)
