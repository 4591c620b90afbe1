"""The three environment files of cidata: ``lima.env``, ``param.env`` and ``etc_environment``.

``lima.env`` and ``param.env`` hold one ``NAME=VALUE`` line each, unquoted:
boot.sh exports each line exactly as written (so a value may hold spaces and
``=``, but not a newline). Every variable Lima's boot scripts read is present,
because they run with ``set -u``; booleans come in Lima's two styles,
``true``/``false`` and ``1``/empty, each where Lima uses it.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.parse
from collections.abc import Mapping

from ..errors import ConfigError
from ..limatype import Info, Instance, LimaYAML
from ..mounts import ResolvedMount
from ..network import SLIRP_DNS, SLIRP_GATEWAY, SLIRP_GUEST_IP
from ..users import GuestUser

log = logging.getLogger("lima_core")

PROXY_NAMES = ("ftp_proxy", "http_proxy", "https_proxy", "no_proxy")


def _gobool(value: bool) -> str:
    return "true" if value else "false"


def _flag(value: bool) -> str:
    return "1" if value else ""


def lima_env(instance: Instance, info: Info, user: GuestUser, iid: str, mounts: list[ResolvedMount],
             data_files: Mapping[int, object], *, debug: bool = False,
             dns_ports: tuple[int, int] = (0, 0), containerd: bool = False) -> dict[str, str]:
    """Every ``LIMA_CIDATA_*`` variable, in Lima's order."""
    cfg = instance.config
    assert cfg is not None
    plain = bool(cfg.plain)
    home = os.path.expanduser("~")
    env = {
        "LIMA_CIDATA_DEBUG": _gobool(debug),
        "LIMA_CIDATA_IID": iid,
        "LIMA_CIDATA_NAME": instance.name,
        "LIMA_CIDATA_USER": user.name,
        "LIMA_CIDATA_UID": str(user.uid),
        "LIMA_CIDATA_COMMENT": "".join(c for c in user.comment if c.isprintable()),
        "LIMA_CIDATA_HOME": user.home,
        "LIMA_CIDATA_SHELL": user.shell,
        "LIMA_CIDATA_HOSTHOME_MOUNTPOINT": next((m.mount_point for m in mounts if m.location == home), ""),
        "LIMA_CIDATA_MOUNTS": str(len(mounts)),
    }
    for i, m in enumerate(mounts):
        env[f"LIMA_CIDATA_MOUNTS_{i}_MOUNTPOINT"] = m.mount_point
    env["LIMA_CIDATA_MOUNTTYPE"] = "" if cfg.mount_type == "wsl2" else (cfg.mount_type or "")
    disks = _disks(cfg)
    env["LIMA_CIDATA_DISKS"] = str(len(disks))
    for i, disk in enumerate(disks):
        env.update({f"LIMA_CIDATA_DISK_{i}_NAME": disk["name"],
                    f"LIMA_CIDATA_DISK_{i}_DEVICE": "vd" + chr(ord("b") + i),
                    f"LIMA_CIDATA_DISK_{i}_FORMAT": _gobool(disk.get("format", True) is not False),
                    f"LIMA_CIDATA_DISK_{i}_FSTYPE": str(disk.get("fsType") or ""),
                    f"LIMA_CIDATA_DISK_{i}_FSARGS": " ".join(str(a) for a in disk.get("fsArgs") or [])})
    for index, p in data_files.items():
        n = f"{index:08d}"
        env.update({f"LIMA_CIDATA_DATAFILE_{n}_OVERWRITE": _gobool(bool(p.overwrite)),  # type: ignore[attr-defined]
                    f"LIMA_CIDATA_DATAFILE_{n}_OWNER": p.owner,  # type: ignore[attr-defined]
                    f"LIMA_CIDATA_DATAFILE_{n}_PATH": p.path,  # type: ignore[attr-defined]
                    f"LIMA_CIDATA_DATAFILE_{n}_PERMISSIONS": p.permissions})  # type: ignore[attr-defined]
    env["LIMA_CIDATA_GUEST_INSTALL_PREFIX"] = cfg.guest_install_prefix or "/usr/local"
    env["LIMA_CIDATA_UPGRADE_PACKAGES"] = _flag(bool(cfg.upgrade_packages))
    # Only with the archive in cidata (*containerd*) is the guest told to install it.
    env["LIMA_CIDATA_CONTAINERD_USER"] = _flag(containerd and bool(cfg.containerd and cfg.containerd.user))
    env["LIMA_CIDATA_CONTAINERD_SYSTEM"] = _flag(containerd and bool(cfg.containerd and cfg.containerd.system))
    if containerd:
        env["LIMA_CIDATA_CONTAINERD_ARCHIVE"] = "nerdctl-full.tgz"
    vz = cfg.vm_type == "vz"
    env.update({
        "LIMA_CIDATA_SLIRP_DNS": SLIRP_GATEWAY if vz else SLIRP_DNS,
        "LIMA_CIDATA_SLIRP_GATEWAY": SLIRP_GATEWAY,
        "LIMA_CIDATA_SLIRP_IP_ADDRESS": SLIRP_GUEST_IP,
        # the host agent's DNS server (hostResolver), when it runs one for this instance
        "LIMA_CIDATA_UDP_DNS_LOCAL_PORT": str(dns_ports[0]),
        "LIMA_CIDATA_TCP_DNS_LOCAL_PORT": str(dns_ports[1]),
        "LIMA_CIDATA_ROSETTA_ENABLED": _gobool(info.features.rosetta_enabled and not plain),
        "LIMA_CIDATA_ROSETTA_BINFMT": _gobool(info.features.rosetta_bin_fmt and not plain),
        "LIMA_CIDATA_SKIP_DEFAULT_DEPENDENCY_RESOLUTION": _flag(any(
            p.mode == "dependency" and p.skip_default_dependency_resolution for p in cfg.provision or [])),
        "LIMA_CIDATA_VMTYPE": cfg.vm_type or "",
        "LIMA_CIDATA_VSOCK_PORT": str(info.vsock_port),
        "LIMA_CIDATA_VIRTIO_PORT": info.virtio_port,
        "LIMA_CIDATA_PLAIN": _flag(plain),
        "LIMA_CIDATA_NO_CLOUD_INIT": _flag(info.features.no_cloud_init),
        "LIMA_CIDATA_PASSWORDLESS_SUDO": _flag(cfg.user is None or cfg.user.passwordless_sudo is not False),
    })
    for name, value in env.items():
        if "\n" in value or "\r" in value:
            raise ConfigError(f"{name}: the value {value!r} holds a line break, which lima.env cannot carry")
    return env


def _disks(cfg: LimaYAML) -> list[dict[str, object]]:
    out = []
    for disk in cfg.additional_disks or []:
        out.append(dict(disk) if isinstance(disk, dict) else {"name": disk})
    return out


def render(env: Mapping[str, str]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in env.items()).encode()


def param_env(cfg: LimaYAML) -> bytes:
    """``PARAM_<key>=<value>`` per param, sorted by key (empty when there are none)."""
    return "".join(f"PARAM_{k}={v}\n" for k, v in sorted((cfg.param or {}).items())).encode()


# -- etc_environment ---------------------------------------------------------------------------


def guest_environment(cfg: LimaYAML, host_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """lima.yaml's ``env`` plus the host's proxies (``propagateProxyEnv``), as the guest should see them.

    A proxy on the host's loopback is rewritten to the gateway, where the guest
    reaches the host; an empty proxy value removes the variable; lower- and
    upper-case spellings end up equal (the lower-case one wins).
    """
    host_env = os.environ if host_env is None else host_env
    out = dict(cfg.env or {})
    if cfg.propagate_proxy_env is not False:
        for name in PROXY_NAMES:
            for spelled in (name, name.upper()):
                if spelled in host_env:
                    if out.get(spelled, host_env[spelled]) != host_env[spelled]:
                        log.info("env.%s is overridden by the host's %s", spelled, spelled)
                    out[spelled] = host_env[spelled]
    for name in PROXY_NAMES:
        for spelled in (name, name.upper()):
            if spelled not in out:
                continue
            if out[spelled] == "":
                del out[spelled]
            elif name != "no_proxy":
                out[spelled] = _proxy_for_guest(out[spelled])
        lower, upper = out.get(name), out.get(name.upper())
        if lower is not None:
            if upper is not None and upper != lower:
                log.warning("%s and %s differ; the guest gets %s=%s for both", name, name.upper(), name, lower)
            out[name.upper()] = lower
        elif upper is not None:
            out[name] = upper
    return out


def _proxy_for_guest(value: str) -> str:
    """*value* with a host that resolves to loopback replaced by the gateway (the host, seen from the guest)."""
    url = urllib.parse.urlsplit(value)
    if not url.scheme or not url.hostname:
        return value
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(url.hostname, None)}
    except OSError:
        return value
    if not any(a.startswith("127.") or a == "::1" for a in addresses):
        return value
    netloc = SLIRP_GATEWAY if url.port is None else f"{SLIRP_GATEWAY}:{url.port}"
    if url.username is not None:
        creds = url.username + (f":{url.password}" if url.password is not None else "")
        netloc = f"{creds}@{netloc}"
    return urllib.parse.urlunsplit(url._replace(netloc=netloc))


def etc_environment(env: Mapping[str, str]) -> bytes:
    for name, value in env.items():
        if "\n" in value or "\n" in name:
            raise ConfigError(f"env.{name}: a value cannot hold a line break in the guest's /etc/environment")
    body = "".join(f"{k}={v}\n" for k, v in sorted(env.items()))
    return f"#LIMA-START\n{body}#LIMA-END\n".encode()
