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
    """Lima's ``driver.DriverFeatures``: what a driver can do, and so what the host does for it.

    Every field is read by lima-core's host (or, for one, only by Lima's); a
    driver of Lima's (``limactl``) sends and reads the same JSON keys.

    :ivar can_run_gui: the VM has a window. After ``start`` the host agent calls
        ``run_gui``, which returns when the VM ends, instead of waiting on the
        start stream alone.
    :ivar dynamic_ssh_address: the guest is not reached at 127.0.0.1. After ``start``
        and ``additional_setup_for_ssh`` the host agent calls ``ssh_address`` and
        writes that address into ``ssh.config``. False: 127.0.0.1.
    :ivar static_ssh_port: the driver chooses the SSH port. False (default): the
        host picks it (``ssh.localPort``, or a free port) and sets
        ``instance.ssh_local_port`` before ``configure``, and the driver forwards that
        port to the guest's 22. True: the host leaves ``ssh_local_port`` to the
        driver (``configure`` or ``inspect_status`` sets it) and connects there (to its
        own pick if the driver sets none).
    :ivar skip_socket_forwarding: the host agent then forwards no
        ``portForwards[].guestSocket`` rule (wsl2 sets it); lima-core's warns, naming each.
    :ivar no_cloud_init: the guest has no cloud-init. cidata is written as the
        directory ``cidata/`` in the instance directory instead of ``cidata.iso``, and
        ``lima.env`` says ``LIMA_CIDATA_NO_CLOUD_INIT=1``; the guest must do what
        cloud-init would with it (create the user, install the SSH keys, run ``boot.sh``).
    :ivar rosetta_enabled: written to the guest as ``LIMA_CIDATA_ROSETTA_ENABLED``
        ("true" or "false", always "false" with ``plain: true``), for its boot scripts
        to mount Rosetta (vz on Apple silicon).
    :ivar rosetta_bin_fmt: written as ``LIMA_CIDATA_ROSETTA_BINFMT``, as above: register
        Rosetta with binfmt_misc in the guest.
    :ivar supported_image_formats: the disk image formats ``create_disk`` takes
        (``qemu-img``'s names: "raw", "qcow2", "vmdk", "vhdx", ...). When the fetched
        image is in another format, the host converts it to raw (with ``qemu-img``)
        before ``create_disk``, as Lima's downloader does, and caches the conversion
        beside the download; "raw" must then be listed, or the image is refused. An ISO
        9660 image is never converted. Empty: every image as fetched.
    """

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
    """Lima's ``driver.Info``: what a driver says about itself and its instance.

    :ivar name: the vmType the driver serves (the conformance kit checks it).
    :ivar vsock_port: the guest agent's vsock port, written to the guest as
        ``LIMA_CIDATA_VSOCK_PORT``; 0: no vsock. With 0 and no ``virtio_port``,
        ``forward_guest_agent`` defaults to True.
    :ivar virtio_port: the guest agent's virtio-serial port name
        (``LIMA_CIDATA_VIRTIO_PORT``); "": none.
    :ivar instance_dir: the instance directory, once configured; "" before.
    :ivar features: a :class:`DriverFeatures`.
    """

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
    sshfs: dict[str, Any] | None = key("sshfs")
    ninep: NineP | None = key("9p")
    virtiofs: dict[str, Any] | None = key("virtiofs")


@model
class SSH(JSONModel):
    """lima.yaml's ``ssh``."""

    address: str | None = key("address")
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
class Locator(JSONModel):
    """A ``file:`` of a provision or probe, or a ``base:`` entry: a URL or path, and a digest."""

    url: str = key("url", "")
    digest: str | None = key("digest")


@model
class Provision(JSONModel):
    """An entry of ``provision``. Which fields a mode takes is checked by validation."""

    mode: str | None = key("mode")
    skip_default_dependency_resolution: bool | None = key("skipDefaultDependencyResolution")
    script: str | None = key("script")
    file: Locator | None = key("file")
    playbook: str | None = key("playbook")
    content: str | None = key("content")
    overwrite: bool | None = key("overwrite")
    owner: str | None = key("owner")
    path: str | None = key("path")
    permissions: str | None = key("permissions")
    expression: str | None = key("expression")
    format: str | None = key("format")


@model
class Probe(JSONModel):
    """An entry of ``probes`` (readiness checks run over SSH while ``lima start`` waits)."""

    mode: str | None = key("mode")
    description: str | None = key("description")
    script: str | None = key("script")
    file: Locator | None = key("file")
    hint: str | None = key("hint")


@model
class PortForward(JSONModel):
    """An entry of ``portForwards``."""

    guest_ip_must_be_zero: bool | None = key("guestIPMustBeZero")
    guest_ip: str | None = key("guestIP")
    guest_port: int | None = key("guestPort")
    guest_port_range: list[int] | None = key("guestPortRange")
    guest_socket: str | None = key("guestSocket")
    host_ip: str | None = key("hostIP")
    host_port: int | None = key("hostPort")
    host_port_range: list[int] | None = key("hostPortRange")
    host_socket: str | None = key("hostSocket")
    proto: str | None = key("proto")
    reverse: bool | None = key("reverse")
    ignore: bool | None = key("ignore")
    static: bool | None = key("static")


@model
class CopyToHost(JSONModel):
    """An entry of ``copyToHost``."""

    guest: str | None = key("guest")
    host: str | None = key("host")
    delete_on_stop: bool | None = key("deleteOnStop")
    skip_if_missing: bool | None = key("skipIfMissing")


@model
class Containerd(JSONModel):
    """lima.yaml's ``containerd``."""

    system: bool | None = key("system")
    user: bool | None = key("user")
    archives: list[File] | None = key("archives")


@model
class CACertificates(JSONModel):
    """lima.yaml's ``caCerts``."""

    remove_defaults: bool | None = key("removeDefaults")
    files: list[str] | None = key("files")
    certs: list[str] | None = key("certs")


@model
class HostResolver(JSONModel):
    """lima.yaml's ``hostResolver``."""

    enabled: bool | None = key("enabled")
    ipv6: bool | None = key("ipv6")
    hosts: dict[str, str] | None = key("hosts")


@model
class User(JSONModel):
    """lima.yaml's ``user``: the guest user."""

    name: str | None = key("name")
    comment: str | None = key("comment")
    home: str | None = key("home")
    shell: str | None = key("shell")
    uid: int | None = key("uid")
    passwordless_sudo: bool | None = key("passwordlessSudo")


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
    #: entries are a disk name or ``{name, format, fsType, fsArgs}`` (limayaml normalises them)
    additional_disks: list[Any] | None = key("additionalDisks")
    mounts: list[Mount] | None = key("mounts")
    mount_type: str | None = key("mountType")
    mount_types_unsupported: list[str] | None = key("mountTypesUnsupported")
    mount_inotify: bool | None = key("mountInotify")
    ssh: SSH | None = key("ssh")
    firmware: Firmware | None = key("firmware")
    audio: Audio | None = key("audio")
    video: Video | None = key("video")
    provision: list[Provision] | None = key("provision")
    upgrade_packages: bool | None = key("upgradePackages")
    containerd: Containerd | None = key("containerd")
    guest_install_prefix: str | None = key("guestInstallPrefix")
    probes: list[Probe] | None = key("probes")
    port_forwards: list[PortForward] | None = key("portForwards")
    copy_to_host: list[CopyToHost] | None = key("copyToHost")
    message: str | None = key("message")
    networks: list[Network] | None = key("networks")
    env: dict[str, str] | None = key("env")
    param: dict[str, str] | None = key("param")
    dns: list[str] | None = key("dns")
    host_resolver: HostResolver | None = key("hostResolver")
    propagate_proxy_env: bool | None = key("propagateProxyEnv")
    ca_certs: CACertificates | None = key("caCerts")
    #: deprecated top-level ``rosetta`` (the vz driver migrates it to ``vmOpts.vz.rosetta``)
    rosetta: Any = key("rosetta")
    plain: bool | None = key("plain")
    timezone: str | None = key("timezone")
    nested_virtualization: bool | None = key("nestedVirtualization")
    tpm: Any = key("tpm")
    user: User | None = key("user")
    #: Lima's per-OS options (``osOpts``), kept for the drivers that read them
    os_opts: dict[str, Any] | None = key("osOpts")

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
#: lima-core's: the VM's state is saved in the instance directory and nothing runs (``lima suspend``)
STATUS_SUSPENDED = "Suspended"


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
