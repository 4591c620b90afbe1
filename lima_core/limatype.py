"""The data a driver and its host exchange, with Lima's JSON keys exactly.

``Info`` and ``DriverFeatures`` are Lima's ``driver.Info``; ``Instance`` is
``limatype.Instance`` and ``LimaYAML`` the part of ``limatype.LimaYAML`` that
drivers and the CLI read. Fields not modelled here are kept in ``extra`` and
written back unchanged.
"""

from __future__ import annotations

import os
from typing import Any

from ._jsonmodel import JSONModel, key, model
from .units import parse_size

# -- driver.Info ------------------------------------------------------------------------


@model
class DriverFeatures(JSONModel):
    """Lima's ``driver.DriverFeatures``: what a driver can do."""

    can_run_gui: bool = key("canRunGui", False, omitempty=True)
    dynamic_ssh_address: bool = key("dynamicSSHAddress", False)
    static_ssh_port: bool = key("staticSSHPort", False)
    skip_socket_forwarding: bool = key("skipSocketForwarding", False)
    no_cloud_init: bool = key("noCloudInit", False)
    rosetta_enabled: bool = key("rosettaEnabled", False)
    rosetta_bin_fmt: bool = key("rosettaBinFmt", False)
    supported_image_formats: list[str] = key("supportedImageFormats", omitempty=True, factory=list)


@model
class Info(JSONModel):
    """Lima's ``driver.Info``: what a driver says about itself and its instance."""

    name: str = key("name", "")
    vsock_port: int = key("vsockPort", 0)
    virtio_port: str = key("virtioPort", "")
    instance_dir: str = key("instanceDir", "", omitempty=True)
    features: DriverFeatures = key("features", factory=DriverFeatures)


# -- lima.yaml --------------------------------------------------------------------------


@model
class File(JSONModel):
    """A downloadable file of lima.yaml (``location``, ``arch``, ``digest``)."""

    location: str = key("location", "")
    arch: str | None = key("arch")
    digest: str | None = key("digest")


@model
class Kernel(File):
    """An image's ``kernel``: a file and its command line."""

    cmdline: str | None = key("cmdline")


@model
class Image(File):
    """An entry of ``images``: a disk image, or a kernel and initrd to boot directly."""

    kernel: Kernel | None = key("kernel")
    initrd: File | None = key("initrd")


@model
class NineP(JSONModel):
    """A mount's ``9p`` options."""

    security_model: str | None = key("securityModel")
    protocol_version: str | None = key("protocolVersion")
    msize: str | None = key("msize")
    cache: str | None = key("cache")


@model
class Mount(JSONModel):
    """An entry of ``mounts``."""

    location: str = key("location", "")
    mount_point: str | None = key("mountPoint")
    writable: bool | None = key("writable")
    ninep: NineP | None = key("9p")
    virtiofs: dict[str, Any] | None = key("virtiofs")


@model
class SSH(JSONModel):
    """lima.yaml's ``ssh``."""

    local_port: int | None = key("localPort")
    load_dot_ssh_pub_keys: bool | None = key("loadDotSSHPubKeys")
    forward_agent: bool | None = key("forwardAgent")
    forward_x11: bool | None = key("forwardX11")
    forward_x11_trusted: bool | None = key("forwardX11Trusted")
    over_vsock: bool | None = key("overVsock")


@model
class Firmware(JSONModel):
    """lima.yaml's ``firmware``."""

    legacy_bios: bool | None = key("legacyBIOS")
    images: list[File] | None = key("images")


@model
class VNC(JSONModel):
    """``video.vnc``."""

    display: str | None = key("display")


@model
class Video(JSONModel):
    """lima.yaml's ``video``."""

    display: str | None = key("display")
    vnc: VNC | None = key("vnc")


@model
class Audio(JSONModel):
    """lima.yaml's ``audio``."""

    device: str | None = key("device")
    interface: str | None = key("interface")


@model
class Network(JSONModel):
    """An entry of ``networks``."""

    lima: str | None = key("lima")
    socket: str | None = key("socket")
    vz_nat: bool | None = key("vzNAT")
    mac_address: str | None = key("macAddress")
    interface: str | None = key("interface")
    metric: int | None = key("metric")


@model
class User(JSONModel):
    """lima.yaml's ``user``: the guest user."""

    name: str | None = key("name")
    comment: str | None = key("comment")
    home: str | None = key("home")
    shell: str | None = key("shell")
    uid: int | None = key("uid")


@model
class LimaYAML(JSONModel):
    """lima.yaml. ``None`` means "not set" (Go's nil pointer) and is not written."""

    base: Any = key("base")
    minimum_lima_version: str | None = key("minimumLimaVersion")
    vm_type: str | None = key("vmType")
    vm_opts: dict[str, Any] | None = key("vmOpts")
    os: str | None = key("os")
    arch: str | None = key("arch")
    images: list[Image] | None = key("images")
    cpu_type: dict[str, str] | None = key("cpuType")
    cpus: int | None = key("cpus")
    memory: str | None = key("memory")
    disk: str | None = key("disk")
    additional_disks: list[Any] | None = key("additionalDisks")
    mounts: list[Mount] | None = key("mounts")
    mount_type: str | None = key("mountType")
    mount_types_unsupported: list[str] | None = key("mountTypesUnsupported")
    ssh: SSH | None = key("ssh")
    firmware: Firmware | None = key("firmware")
    audio: Audio | None = key("audio")
    video: Video | None = key("video")
    networks: list[Network] | None = key("networks")
    port_forwards: list[Any] | None = key("portForwards")
    provision: list[Any] | None = key("provision")
    probes: list[Any] | None = key("probes")
    message: str | None = key("message")
    env: dict[str, str] | None = key("env")
    param: dict[str, str] | None = key("param")
    plain: bool | None = key("plain")
    tpm: Any = key("tpm")
    nested_virtualization: bool | None = key("nestedVirtualization")
    rosetta: Any = key("rosetta")
    user: User | None = key("user")

    def vm_opts_for(self, vm_type: str) -> dict[str, Any]:
        """``vmOpts.<vm_type>`` as a (possibly new, attached) mapping."""
        if self.vm_opts is None:
            self.vm_opts = {}
        opts = self.vm_opts.get(vm_type)
        if not isinstance(opts, dict):
            opts = self.vm_opts[vm_type] = {}
        return opts

    def image_for_arch(self, arch: str | None = None) -> Image | None:
        """The first image whose arch is *arch* (the config's arch by default)."""
        want = arch or self.arch or host_arch()
        for image in self.images or []:
            if (image.arch or want) == want:
                return image
        return None

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory or "0", "memory")

    @property
    def disk_bytes(self) -> int:
        return parse_size(self.disk or "0", "disk")


# -- limatype.Instance ------------------------------------------------------------------

STATUS_UNKNOWN = ""
STATUS_UNINITIALIZED = "Uninitialized"
STATUS_INSTALLING = "Installing"
STATUS_BROKEN = "Broken"
STATUS_STOPPED = "Stopped"
STATUS_RUNNING = "Running"


@model
class Instance(JSONModel):
    """Lima's ``limatype.Instance``: an instance as ``limactl list --json`` shows it, and as drivers receive it."""

    name: str = key("name", "")
    hostname: str = key("hostname", "")
    status: str = key("status", STATUS_UNKNOWN)
    dir: str = key("dir", "")
    vm_type: str = key("vmType", "")
    arch: str = key("arch", "")
    cpus: int = key("cpus", 0, omitempty=True)
    memory: int = key("memory", 0, omitempty=True)
    disk: int = key("disk", 0, omitempty=True)
    message: str = key("message", "", omitempty=True)
    additional_disks: list[Any] = key("additionalDisks", omitempty=True, factory=list)
    networks: list[Any] = key("network", omitempty=True, factory=list)
    ssh_local_port: int = key("sshLocalPort", 0, omitempty=True)
    ssh_config_file: str = key("sshConfigFile", "", omitempty=True)
    host_agent_pid: int = key("hostAgentPID", 0, omitempty=True)
    driver_pid: int = key("driverPID", 0, omitempty=True)
    errors: list[str] = key("errors", omitempty=True, factory=list)
    config: LimaYAML | None = key("config")
    ssh_address: str = key("sshAddress", "", omitempty=True)
    protected: bool = key("protected", False)
    lima_version: str = key("limaVersion", "")
    param: dict[str, str] = key("param", omitempty=True, factory=dict)
    auto_started_identifier: str = key("autoStartedIdentifier", "", omitempty=True)


# -- lima.yaml values ----------------------------------------------------------------------

ARCHES = ("x86_64", "aarch64", "armv7l", "ppc64le", "riscv64", "s390x")
#: every mountType Lima knows (which ones a driver can give a guest is its own business)
MOUNT_TYPES = ("reverse-sshfs", "9p", "virtiofs", "wsl2")
#: Lima's builtin ``disk:`` when lima.yaml and default.yaml leave it out
DEFAULT_DISK = "100GiB"
_ARCH_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64",
                 "armv7l": "armv7l", "ppc64le": "ppc64le", "riscv64": "riscv64", "s390x": "s390x"}


def host_arch() -> str:
    """This host's arch in Lima's spelling (x86_64, aarch64, ...)."""
    if hasattr(os, "uname"):  # what platform.machine() reads, without importing platform (a driver starts faster)
        machine = os.uname().machine.lower()
    else:
        import platform

        machine = platform.machine().lower()
    return _ARCH_ALIASES.get(machine, machine)
