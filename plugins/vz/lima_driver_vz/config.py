"""The VM's configuration as plain data: what ``start`` asks Virtualization.framework for.

:func:`build` reads the instance (lima.yaml and the files in its directory)
and returns a :class:`VMSpec`; no framework is touched here, so every
decision is unit-tested anywhere. ``framework.configuration.realize`` turns a
spec into ``VZVirtualMachineConfiguration``, one framework call per field.

Devices, as Lima's vz driver attaches them:

- boot: the Linux boot loader when ``kernel`` exists (``kernel.cmdline`` and
  ``initrd`` when present), otherwise EFI with the variable store ``vz-efi``
  (created when missing);
- platform: generic, with the identifier in ``vz-identifier``;
- serial: a virtio console writing ``serialv.log``;
- network: NIC 1 on the VZ NAT attachment with the instance's MAC address
  (lima-core's ``network.mac_address``, which cidata's network-config
  matches), then one NAT NIC per ``networks[]`` entry with ``vzNAT: true``.
  Lima instead attaches NIC 1 to its in-process gvisor-tap-vsock network
  through a file-handle attachment (a datagram socketpair). lima-core has no
  user-mode network stack, so NIC 1 stays on NAT: the guest gets a DHCP
  address from macOS that the Mac reaches directly, SSH is forwarded from
  ``127.0.0.1:<sshLocalPort>`` (see :mod:`.sshforward`), and the guest agent
  is reached over vsock, which does not depend on the NIC;
- storage: ``disk`` as virtio-blk (cached, fsync), ``iso`` as read-only USB
  mass storage, additional disks as virtio-blk, ``cidata.iso`` as read-only
  virtio-blk. Disks must be raw (size a multiple of 512 bytes) or, from
  macOS 26, ASIF;
- virtiofs: one device per mount (tag from ``lima_core.mounts``) when
  ``mountType`` is virtiofs, plus the Rosetta share (tag ``vz-rosetta``;
  arm64 only; on macOS 14 or later with its cache at
  :data:`ROSETTA_CACHE_SOCKET`, the path the boot script gives ``rosettad``);
- display: virtio-gpu 1920x1200 when ``video.display`` is vz or default;
- audio: a virtio-sound output stream when ``audio.device`` is vz or default;
- always: entropy, memory balloon, a vsock device, USB pointer and keyboard.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from lima_core import filenames, mounts
from lima_core.errors import StartFailed
from lima_core.limatype import Instance
from lima_core.network import mac_address

from . import datadisks
from . import disk as diskmod
from .hostinfo import ASIF_MACOS, NESTED_MACOS, ROSETTA_CACHING_MACOS, HostFacts
from .options import VZOptions
from .validation import display_of

GUI_WIDTH, GUI_HEIGHT = 1920, 1200
ROSETTA_TAG = "vz-rosetta"
#: the guest's Unix socket for Rosetta's AOT cache; boot/05-rosetta-volume.sh links rosettad's socket here
ROSETTA_CACHE_SOCKET = "/run/rosettad/rosetta.sock"
DEFAULT_CPUS = 4
DEFAULT_MEMORY = 4 << 30


@dataclasses.dataclass(frozen=True)
class LinuxBoot:
    kernel: str
    command_line: str | None = None
    initrd: str | None = None


@dataclasses.dataclass(frozen=True)
class EFIBoot:
    variable_store: str
    #: the store does not exist yet and is created at start
    create: bool


@dataclasses.dataclass(frozen=True)
class Platform:
    identifier: str
    nested_virtualization: bool = False


@dataclasses.dataclass(frozen=True)
class NIC:
    #: "nat" (VZNATNetworkDeviceAttachment)
    attachment: str
    mac_address: str


@dataclasses.dataclass(frozen=True)
class Storage:
    path: str
    read_only: bool
    #: "virtio-blk" or "usb"
    bus: str
    #: VZDiskImageCachingMode / VZDiskImageSynchronizationMode names; None for the framework's default
    caching: str | None = None
    sync: str | None = None


@dataclasses.dataclass(frozen=True)
class Share:
    tag: str
    #: the host directory; None for the Rosetta share
    path: str | None
    read_only: bool = False
    rosetta: bool = False


@dataclasses.dataclass(frozen=True)
class VMSpec:
    cpus: int
    memory: int
    boot: LinuxBoot | EFIBoot
    platform: Platform
    serial_log: str
    nics: tuple[NIC, ...]
    storage: tuple[Storage, ...]
    shares: tuple[Share, ...]
    #: (width, height) of the virtio-gpu scanout, or None for no display
    display: tuple[int, int] | None
    audio_output: bool
    #: macOS version to ask the Rosetta share for caching options (14+)
    rosetta_caching: bool = False
    entropy: bool = True
    memory_balloon: bool = True
    vsock: bool = True
    usb_input: bool = True


def _boot(inst_dir: Path) -> LinuxBoot | EFIBoot:
    kernel = inst_dir / filenames.KERNEL
    if kernel.exists():
        cmdline_file = inst_dir / filenames.KERNEL_CMDLINE
        initrd = inst_dir / filenames.INITRD
        return LinuxBoot(kernel=str(kernel),
                         command_line=cmdline_file.read_text().strip() if cmdline_file.exists() else None,
                         initrd=str(initrd) if initrd.exists() else None)
    store = inst_dir / filenames.VZ_EFI
    return EFIBoot(variable_store=str(store), create=not store.exists())


def _require(path: Path, why: str) -> str:
    if not path.exists():
        raise StartFailed(f"{path} does not exist: {why}")
    return str(path)


def _check_raw_or_asif(path: Path, facts: HostFacts) -> None:
    fmt = diskmod.detect_format(path)
    if fmt == "asif":
        if not facts.macos_at_least(ASIF_MACOS):
            raise StartFailed(f"{path} is an ASIF image, which Virtualization.framework reads from macOS "
                              f"{ASIF_MACOS[0]} on; this host runs {facts.describe()}")
        return
    if fmt != "raw":
        raise StartFailed(f"{path} is a {fmt} image; vz needs raw or ASIF disks (convert it with "
                          f"`qemu-img convert -O raw`)")
    size = path.stat().st_size
    if size % diskmod.SECTOR:
        raise StartFailed(f"{path} is {size} bytes, not a multiple of {diskmod.SECTOR}, which "
                          f"Virtualization.framework refuses; grow it with `truncate -s {diskmod.round_up(size)} {path}`")


def build(instance: Instance, facts: HostFacts, opts: VZOptions) -> VMSpec:
    """The VM for *instance* as plain data; StartFailed names a missing or unusable file."""
    cfg = instance.config
    assert cfg is not None
    inst_dir = Path(instance.dir)
    ident = _require(inst_dir / filenames.VZ_IDENTIFIER, "run `lima create` (or the driver's create) first")
    disk = inst_dir / filenames.DISK
    _require(disk, "the disk is created from the image by create_disk")
    _check_raw_or_asif(disk, facts)
    storage = [Storage(str(disk), read_only=False, bus="virtio-blk", caching="cached", sync="fsync")]
    iso = inst_dir / filenames.ISO
    if iso.exists():
        storage.append(Storage(str(iso), read_only=True, bus="usb"))
    for name in datadisks.names(cfg.additional_disks):
        path = datadisks.path(name)
        _require(path, f"additional disk {name!r} does not exist; create it with `lima disk create {name}`")
        _check_raw_or_asif(path, facts)
        storage.append(Storage(str(path), read_only=False, bus="virtio-blk", caching="cached", sync="fsync"))
    storage.append(Storage(_require(inst_dir / filenames.CIDATA_ISO, "cidata is generated before start"),
                           read_only=True, bus="virtio-blk"))

    nics = [NIC("nat", mac_address(inst_dir))]
    for i, network in enumerate(cfg.networks or []):
        if network.vz_nat:
            nics.append(NIC("nat", network.mac_address or mac_address(f"{inst_dir}#{i}")))

    shares: list[Share] = []
    if cfg.mount_type == "virtiofs" and not cfg.plain:
        for m in mounts.resolve(cfg):
            shares.append(Share(m.tag, m.location, read_only=not m.writable))
    if opts.rosetta_enabled and facts.arch == "aarch64":
        shares.append(Share(ROSETTA_TAG, None, rosetta=True))

    display = display_of(cfg)
    audio = (cfg.audio.device if cfg.audio else None) or ""
    nested = bool(cfg.nested_virtualization)
    if nested and not facts.macos_at_least(NESTED_MACOS):
        raise StartFailed(f"nested virtualization needs macOS {NESTED_MACOS[0]} or later; "
                          f"this host runs {facts.describe()}")
    return VMSpec(
        cpus=cfg.cpus or min(DEFAULT_CPUS, os.cpu_count() or 1),
        memory=cfg.memory_bytes or DEFAULT_MEMORY,
        boot=_boot(inst_dir),
        platform=Platform(ident, nested_virtualization=nested),
        serial_log=str(inst_dir / filenames.SERIALV_LOG),
        nics=tuple(nics),
        storage=tuple(storage),
        shares=tuple(shares),
        display=(GUI_WIDTH, GUI_HEIGHT) if display in ("vz", "default") else None,
        audio_output=audio in ("vz", "default"),
        rosetta_caching=facts.macos_at_least(ROSETTA_CACHING_MACOS),
    )


def share_directories(spec: VMSpec) -> list[str]:
    """Host directories the shares need; Lima creates missing ones (mode 0750) before start."""
    return [s.path for s in spec.shares if s.path is not None]
