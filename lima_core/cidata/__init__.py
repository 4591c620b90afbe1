"""cidata: what the guest reads at boot, laid out as Lima writes it.

A driver's boot scripts written for Lima read Lima's files and variables, so
this layout is part of the driver contract. ``cidata.iso`` is an ISO 9660
volume labelled ``cidata`` (Rock Ridge keeps names and exec bits), built with
pycdlib and made anew at every start with a new instance id. Drivers whose
Info says ``noCloudInit`` get the same files as a ``cidata/`` directory
instead, plus ``ssh_authorized_keys``. The volume holds:

- ``user-data`` (:mod:`.userdata`): creates the user with its keys, installs
  the per-boot wrapper that mounts the volume at ``/mnt/lima-cidata`` (only
  root can read it) and runs ``boot.sh``, and runs ``mode: boot`` provisions
  in ``bootcmd``; ``meta-data`` and ``network-config``;
- ``lima.env``, ``param.env``, ``etc_environment`` (:mod:`.env`);
- ``boot.sh``, ``util/``, ``boot.essential.<OS>/`` and ``boot.<OS>/`` (from
  ``scripts/`` beside this module, then the driver's scripts), and
  ``provision.<mode>/NNNNNNNN`` for the other provision modes;
- ``lima-guestagent`` (:mod:`.guestagent`; not in plain mode), which
  ``boot.Linux/25-guestagent-base.sh`` installs and starts.

``cloud-config.yaml`` in the instance directory is a reference copy of the
user-data, without the wrapper, mounts or DNS, as Lima keeps one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import shutil
import time
from pathlib import Path

import pycdlib

from .. import containerd, filenames, gotemplate, mounts, templatevalues
from ..errors import ConfigError
from ..limatype import Info, Instance, LimaYAML
from ..network import SLIRP_DNS, SLIRP_GATEWAY, mac_address
from ..users import GuestUser
from . import env, guestagent, userdata
from .userdata import BOOT_ERRORS, GUEST_MOUNT, VOLUME_LABEL

log = logging.getLogger("lima_core")

__all__ = ["BOOT_DONE", "BOOT_ERRORS", "GUEST_MOUNT", "SSH_READY", "VOLUME_LABEL", "Cidata", "files", "generate",
           "instance_id", "normalize_boot_scripts"]

BOOT_DONE = "/run/lima-boot-done"
SSH_READY = "/run/lima-ssh-ready"
SCRIPTS = Path(__file__).parent / "scripts"


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


def guest_template_values(instance: Instance, user: GuestUser) -> dict[str, object]:
    """What ``{{.X}}`` means in a guest template (provision scripts, probes, guest paths)."""
    return templatevalues.guest(instance.name, user, instance.config.param if instance.config else None)


def host_resolver_applies(cfg: LimaYAML) -> bool:
    """Whether the host agent serves the guest's DNS (Lima's rule: hostResolver on, no ``dns:``, not vz,
    whose network brings its own)."""
    return bool(cfg.host_resolver is not None and cfg.host_resolver.enabled is not False and not cfg.dns
                and cfg.vm_type != "vz")


def dns_servers(cfg: LimaYAML) -> list[str]:
    """The guest's resolvers: ``dns:``, else the user network's DNS address (the gateway's on vz)."""
    if cfg.dns:
        return list(cfg.dns)
    if cfg.host_resolver is None or cfg.host_resolver.enabled is not False:
        return [SLIRP_GATEWAY if cfg.vm_type == "vz" else SLIRP_DNS]
    return []


def _nics(instance: Instance) -> list[tuple[str, str]]:
    nics = [(mac_address(Path(instance.dir)), "eth0")]
    cfg = instance.config
    for i, nw in enumerate(cfg.networks or [] if cfg is not None else []):
        if nw.mac_address:
            nics.append((nw.mac_address, nw.interface or f"lima{i}"))
    return nics


#: a file of the volume: its bytes, or a host file to copy (the nerdctl archive), and its mode
Content = tuple[bytes | Path, int]


def files(instance: Instance, info: Info, boot_scripts: dict[str, bytes], user: GuestUser, pubkeys: list[str],
          iid: str, *, debug: bool = False, dns_ports: tuple[int, int] = (0, 0),
          containerd_archive: Path | None = None) -> dict[str, Content]:
    """Every file of the volume: path -> (content, mode). *containerd_archive*: nerdctl-full, to install."""
    cfg = instance.config
    assert cfg is not None
    values = guest_template_values(instance, user)
    shared = [] if cfg.plain else mounts.resolve(cfg)
    provisions: dict[str, dict[int, str]] = {}
    data_files = {}
    for i, p in enumerate(cfg.provision or []):
        where = f"provision[{i}]"
        if p.mode == "data":
            p = dataclasses.replace(p, **{attr: gotemplate.expand(getattr(p, attr) or "", values, f"{where}.{attr}")
                                          for attr in ("content", "owner", "path", "permissions")})
            data_files[i] = p
            provisions.setdefault("data", {})[i] = p.content or ""
        elif p.mode in ("system", "user", "boot", "dependency"):
            provisions.setdefault(p.mode, {})[i] = gotemplate.expand(p.script or "", values, f"{where}.script")
    rosetta = info.features.rosetta_enabled and not cfg.plain
    nics = _nics(instance)
    dns = dns_servers(cfg)
    boot = sorted(provisions.pop("boot", {}).items())
    lima_env = env.lima_env(instance, info, user, iid, shared, data_files, debug=debug, dns_ports=dns_ports,
                            containerd=containerd_archive is not None)
    out: dict[str, Content] = {
        "user-data": (userdata.user_data(cfg, user, pubkeys, shared, boot_scripts=boot, nics=nics, dns=dns,
                                         rosetta=rosetta).encode(), 0o644),
        "meta-data": (userdata.meta_data(iid, instance.hostname).encode(), 0o644),
        "network-config": (userdata.network_config(nics, dns).encode(), 0o644),
        "lima.env": (env.render(lima_env), 0o644),
        "param.env": (env.param_env(cfg), 0o644),
        "etc_environment": (env.etc_environment(env.guest_environment(cfg)), 0o644),
    }
    for path in sorted(SCRIPTS.rglob("*")):
        if path.is_file():
            out[path.relative_to(SCRIPTS).as_posix()] = (path.read_bytes(), 0o755)
    for key, content in normalize_boot_scripts(boot_scripts).items():
        out[key] = (content, 0o755)
    for mode, scripts in provisions.items():
        for i, text in scripts.items():
            out[f"provision.{mode}/{i:08d}"] = (text.encode(), 0o644 if mode == "data" else 0o755)
    if containerd_archive is not None:
        out[containerd.ARCHIVE_NAME] = (containerd_archive, 0o644)
    if not cfg.plain and (cfg.os or "Linux") == "Linux":
        out[guestagent.NAME] = (guestagent.zipapp(), 0o755)
    if info.features.no_cloud_init:
        out["ssh_authorized_keys"] = ("\n".join(k.strip() for k in pubkeys if k.strip()).encode(), 0o644)
    return out


def generate(instance: Instance, info: Info, boot_scripts: dict[str, bytes], user: GuestUser, pubkeys: list[str],
             *, debug: bool = False, dns_ports: tuple[int, int] = (0, 0),
             containerd_archive: Path | None = None) -> Cidata:
    """Write cidata for this boot into the instance directory (and cloud-config.yaml for reference).

    *dns_ports*: the host agent's DNS server (UDP, TCP), when it runs one; *containerd_archive*: the
    nerdctl-full archive to install."""
    iid = instance_id()
    content = files(instance, info, boot_scripts, user, pubkeys, iid, debug=debug, dns_ports=dns_ports,
                    containerd_archive=containerd_archive)
    inst_dir = Path(instance.dir)
    cfg = instance.config
    assert cfg is not None
    reference = userdata.user_data(cfg, user, pubkeys, [], boot_scripts=[], nics=_nics(instance), dns=[],
                                   rosetta=False, reference=True)
    _write_reference(inst_dir / filenames.CLOUD_CONFIG, reference.encode())
    if info.features.no_cloud_init:
        return Cidata(_write_dir(inst_dir / filenames.CIDATA_DIR, content), iid)
    return Cidata(_write_iso(inst_dir / filenames.CIDATA_ISO, content), iid)


def _write_reference(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_bytes(data)
    os.chmod(tmp, 0o444)
    tmp.replace(path)


def _write_dir(path: Path, content: dict[str, Content]) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    for rel in sorted(content, key=str.lower):
        data, mode = content[rel]
        target = tmp / rel
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if isinstance(data, Path):
            shutil.copyfile(data, target)
        else:
            target.write_bytes(data)
        os.chmod(target, mode)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def _write_iso(path: Path, content: dict[str, Content]) -> Path:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, vol_ident=VOLUME_LABEL, rock_ridge="1.09", joliet=3)
    made: set[str] = set()
    opened = contextlib.ExitStack()  # host files stay open until the volume is written
    for rel in sorted(content):
        data, mode = content[rel]
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                iso.add_directory(_iso_path(directory), rr_name=parts[depth - 1], joliet_path="/" + directory,
                                  file_mode=0o40755)
                made.add(directory)
        if isinstance(data, Path):
            fp, size = opened.enter_context(open(data, "rb")), data.stat().st_size
        else:
            fp, size = io.BytesIO(data), len(data)
        iso.add_fp(fp, size, _iso_path(rel), rr_name=parts[-1], joliet_path="/" + rel, file_mode=0o100000 | mode)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with opened:
            iso.write(str(tmp))
    finally:
        iso.close()
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return path


def _iso_path(rel: str) -> str:
    """A level-4 ISO 9660 path (upper case, no version for directories)."""
    return "/" + "/".join(p.upper() for p in rel.split("/"))
