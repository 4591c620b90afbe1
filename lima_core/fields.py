"""What lima-core does with each lima.yaml field: applied, left to the driver, or refused.

Nothing in a lima.yaml is accepted and silently ignored. Every field of the
model (:class:`~lima_core.limatype.LimaYAML` and the models below it) has a
row in :data:`FIELDS`; ``tests/docs`` checks that no field is missing and that
``docs/lima-yaml.md`` is this table. A field lima-core does not apply is
either refused (an error: ignoring it would betray the template's intent) or
accepted with a warning naming it; :func:`check` finds them in a config.

Fields marked ``driver`` are the driver's to apply: it receives the whole
config in ``configure`` and refuses in ``validate`` what it cannot do.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from typing import Any

from .errors import ConfigError
from .limatype import LimaYAML

log = logging.getLogger("lima_core")

APPLIED = "applied"
DRIVER = "driver"
#: applied, except for some values, which are refused
PARTLY = "partly"
REFUSED = "refused"
WARNED = "warned"


@dataclasses.dataclass(frozen=True)
class Field:
    """One lima.yaml field (a dotted path; ``[]`` for list entries) and what lima-core does with it."""

    path: str
    status: str
    #: what happens, in one sentence (for the docs table and the messages)
    how: str
    #: for PARTLY, REFUSED and WARNED: whether a config uses the field in a way lima-core does not apply
    unapplied: Callable[[LimaYAML], bool] | None = None
    #: for PARTLY: whether that use is refused (an error) rather than warned about
    refuse: bool = True


def _set(attr: str) -> Callable[[LimaYAML], bool]:
    return lambda cfg: bool(getattr(cfg, attr))


def _any_mount(pred: Callable[[Any], bool]) -> Callable[[LimaYAML], bool]:
    return lambda cfg: any(pred(m) for m in cfg.mounts or [])


FIELDS: tuple[Field, ...] = (
    Field("base", APPLIED, "merged into the instance's lima.yaml at create time"),
    Field("minimumLimaVersion", APPLIED, "refused when above the Lima version lima-core follows"),
    Field("vmType", APPLIED, "chooses the driver (internal or external)"),
    Field("vmOpts", DRIVER, "per-driver options, read by the driver they name"),
    Field("os", DRIVER, "the guest OS; lima-core writes cidata for Linux guests"),
    Field("osOpts", DRIVER, "per-OS options (Windows, Darwin guests), read by the driver"),
    Field("arch", DRIVER, "the guest architecture"),
    Field("images", APPLIED, "fetched (with digest check) and handed to the driver's create_disk"),
    Field("cpuType", DRIVER, "deprecated; the qemu driver moves it to vmOpts.qemu.cpuType"),
    Field("cpus", DRIVER, "virtual CPUs"),
    Field("memory", DRIVER, "guest memory"),
    Field("disk", DRIVER, "boot disk size"),
    Field("additionalDisks", DRIVER, "disks made by `lima disk create`: the qemu and vz drivers attach "
          "`_disks/<name>/datadisk`, locked to the instance while it runs; the guest formats a disk on first use "
          "and mounts it at /mnt/lima-<name>"),
    Field("mounts", APPLIED, "location (host template, ~) and mountPoint (guest template) expanded as Lima's; "
          "9p and virtiofs: fstab rows through cloud-init over the driver's devices, so they come back after a "
          "guest reboot; reverse-sshfs: mounted by the host agent over SSH (docs/mounts.md)"),
    Field("mounts[].sshfs", PARTLY, "cache and followSymlinks become sshfs options; sftpDriver: OpenSSH's "
          "sftp-server serves the mount; 'builtin' (Lima's in-process SFTP server) is refused, lima-core has none",
          _any_mount(lambda m: isinstance(m.sshfs, dict) and m.sshfs.get("sftpDriver") == "builtin")),
    Field("mounts[].9p", APPLIED, "9p options (securityModel, protocolVersion, msize, cache)"),
    Field("mounts[].virtiofs", DRIVER, "virtiofs options (queueSize), for drivers that share with virtiofs"),
    Field("mountType", APPLIED, "9p and virtiofs: the driver's devices, mounted from fstab; reverse-sshfs: the "
          "host agent runs sshfs in the guest over SSH, served by the host's sftp-server; wsl2: the driver's"),
    Field("mountTypesUnsupported", APPLIED, "a mountType listed here is refused"),
    Field("mountInotify", PARTLY, "the host agent watches the writable mounts with inotify and replays each "
          "change in the guest over SSH (touch), as Lima's guest agent does; refused on hosts other than Linux",
          lambda cfg: bool(cfg.mount_inotify) and not sys.platform.startswith("linux")),
    Field("ssh.address", APPLIED, "the address in ssh.config (drivers with a dynamic address override it)"),
    Field("ssh.localPort", APPLIED, "the host port forwarded to the guest's SSH (0: a free one)"),
    Field("ssh.loadDotSSHPubKeys", APPLIED, "adds ~/.ssh/*.pub to the guest user's authorized keys"),
    Field("ssh.forwardAgent", APPLIED, "ForwardAgent in ssh.config"),
    Field("ssh.forwardX11", APPLIED, "ForwardX11 in ssh.config"),
    Field("ssh.forwardX11Trusted", APPLIED, "ForwardX11Trusted in ssh.config"),
    Field("ssh.overVsock", DRIVER, "SSH over vsock, for drivers that offer it"),
    Field("firmware", DRIVER, "legacy BIOS or UEFI, and firmware images"),
    Field("audio", DRIVER, "the audio device"),
    Field("video", DRIVER, "the display; with vnc, lima-core sets the password and writes vncdisplay"),
    Field("provision", PARTLY, "every mode as Lima delivers it (ansible runs on the host); a failing script "
          "makes `lima start` end degraded, naming it; mode yq is not supported (lima-core has no yq in the guest)",
          lambda cfg: any(p.mode == "yq" for p in cfg.provision or [])),
    Field("upgradePackages", APPLIED, "cloud-init's package_update/upgrade and LIMA_CIDATA_UPGRADE_PACKAGES"),
    Field("containerd", APPLIED, "nerdctl-full from containerd.archives (Lima's pinned release by default) "
          "installed in the guest; when the archive cannot be had, `lima start` says so in one line"),
    Field("guestInstallPrefix", APPLIED, "LIMA_CIDATA_GUEST_INSTALL_PREFIX"),
    Field("probes", APPLIED, "readiness probes: `lima start` waits for each, showing its description"),
    Field("portForwards", APPLIED, "every field and rule of Lima, then its default rule; forwarded through "
          "lima-guestagent (TCP, UDP, unix sockets), static and reverse rules over SSH, and in a guest without "
          "python3 TCP over SSH; `lima port-forwards` shows what is forwarded (docs/guest-agent.md)"),
    Field("copyToHost", APPLIED, "copied from the guest when the instance is ready (deleteOnStop: removed "
          "when the host agent stops)"),
    Field("message", APPLIED, "printed by `lima start` after READY"),
    Field("networks", DRIVER, "extra networks"),
    Field("env", APPLIED, "the guest's /etc/environment (etc_environment in cidata)"),
    Field("param", APPLIED, "param.env, PARAM_* in provisions and probes, {{.Param.X}} in templates"),
    Field("dns", APPLIED, "the guest's resolvers (cloud-init resolv_conf and network-config)"),
    Field("hostResolver.enabled", APPLIED, "the host agent serves the guest's DNS (host.lima.internal, "
          "lima-<name>, the rest through the host's resolver); host.lima.internal is also in /etc/hosts"),
    Field("hostResolver.ipv6", PARTLY, "AAAA answers from the host agent's DNS; vz's network has its own DNS",
          lambda cfg: bool(cfg.host_resolver and cfg.host_resolver.ipv6) and cfg.vm_type == "vz", refuse=False),
    Field("hostResolver.hosts", PARTLY, "names the host agent's DNS answers (an address, or an alias resolved "
          "on the host); vz's network has its own DNS, where lima-core cannot add them",
          lambda cfg: bool(cfg.host_resolver and cfg.host_resolver.hosts) and cfg.vm_type == "vz", refuse=False),
    Field("propagateProxyEnv", APPLIED, "the host's proxy variables into the guest's environment, a proxy "
          "on the host's loopback rewritten to the host's address in the guest"),
    Field("caCerts", APPLIED, "cloud-init ca_certs: files (read at each start) and inline certs"),
    Field("rosetta", DRIVER, "deprecated; the vz driver moves it to vmOpts.vz.rosetta"),
    Field("plain", APPLIED, "plain mode: no mounts, no port forwards, no containerd, no boot.<OS> scripts"),
    Field("timezone", APPLIED, "cloud-init timezone (the host's by default)"),
    Field("nestedVirtualization", DRIVER, "nested virtualization"),
    Field("tpm", DRIVER, "a TPM device"),
    Field("user.name", APPLIED, "the guest user (created by cloud-init, used by ssh)"),
    Field("user.comment", APPLIED, "the guest user's GECOS"),
    Field("user.home", APPLIED, "the guest user's home"),
    Field("user.shell", APPLIED, "the guest user's shell"),
    Field("user.uid", APPLIED, "the guest user's uid"),
    Field("user.passwordlessSudo", APPLIED, "sudo without a password (false needs plain: true, as in Lima)"),
)

BY_PATH = {f.path: f for f in FIELDS}


@dataclasses.dataclass(frozen=True)
class Finding:
    path: str
    error: bool
    message: str


#: Fields delivered in cloud-init's user-data, and whether a config asks for more than the default: a
#: driver whose guest has no cloud-init (Info's noCloudInit, e.g. wsl2) does not apply them.
USER_DATA_FIELDS: dict[str, Callable[[LimaYAML], bool]] = {
    "caCerts": lambda cfg: bool(cfg.ca_certs and (cfg.ca_certs.certs or cfg.ca_certs.files
                                                  or cfg.ca_certs.remove_defaults)),
    "timezone": lambda cfg: bool(cfg.timezone),
    "upgradePackages": lambda cfg: bool(cfg.upgrade_packages),
    "dns": lambda cfg: bool(cfg.dns),
}


def check(cfg: LimaYAML, driver: str = "", *, no_cloud_init: bool = False) -> list[Finding]:
    """The fields *cfg* uses in a way lima-core does not apply (with a driver whose guest has no cloud-init,
    also the fields only cloud-init applies)."""
    on = f" (driver {driver})" if driver else ""
    out = [Finding(f.path, f.status == REFUSED or (f.status == PARTLY and f.refuse),
                   f"{f.path} is not supported by lima-core{on}: {f.how}")
           for f in FIELDS if f.unapplied is not None and f.unapplied(cfg)]
    if no_cloud_init:
        out += [Finding(path, False, f"{path} is not applied{on}: its guest has no cloud-init to apply it")
                for path, used in USER_DATA_FIELDS.items() if used(cfg)]
    return out


def enforce(cfg: LimaYAML, driver: str = "", source: str = "lima.yaml", *, warn: bool = True,
            no_cloud_init: bool = False) -> list[str]:
    """Warn about each field *cfg* uses that lima-core ignores (unless not *warn*); ConfigError naming every
    one it refuses. Returns the warnings."""
    findings = check(cfg, driver, no_cloud_init=no_cloud_init)
    for finding in findings:
        if warn and not finding.error:
            log.warning("%s: %s", source, finding.message)
    refused = [f for f in findings if f.error]
    if refused:
        raise ConfigError(f"{source}: " + "; ".join(f.message for f in refused))
    return [f.message for f in findings]


_STATUS_TEXT = {APPLIED: "applied", DRIVER: "the driver's", PARTLY: "applied, except where said",
                REFUSED: "refused", WARNED: "warned about, not applied"}


def render() -> str:
    """docs/lima-yaml.md: the table of every field."""
    rows = "\n".join(f"| `{f.path}` | {_STATUS_TEXT[f.status]} | {f.how} |" for f in FIELDS)
    return f"""# lima.yaml in lima-core

What lima-core does with each field of Lima's `lima.yaml`. Generated from
`lima_core/fields.py` (`tests/docs` fails when this file and the table differ,
or when a field of the model has no row).

- **applied**: lima-core does what Lima does with it.
- **the driver's**: handed to the driver in `configure`; the driver applies it,
  or refuses it in `validate`.
- **refused**: `lima create` and `lima start` stop with an error naming the
  field; `lima template validate` warns.
- **applied, except where said**: the exception is refused, or warned about
  where ignoring it loses nothing the template relies on.
- **warned about, not applied**: `lima start` warns, naming the field.

| field | what lima-core does | how |
|---|---|---|
{rows}
"""
