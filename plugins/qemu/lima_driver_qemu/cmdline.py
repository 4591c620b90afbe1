"""The QEMU command line, as Lima's ``Cmdline`` builds it (reference §4.5), from plain facts.

:func:`build` is a pure function of a :class:`Spec`: everything that needs the
file system or a process (which files exist, the firmware, the accelerator,
the version) is decided before and written into the spec, so the command line
can be checked without QEMU. Arguments come in Lima's order; flags that take
one value (``-m``, ``-cpu``, ``-machine``, ...) are skipped with a warning when
``$QEMU_SYSTEM_<ARCH>`` already gave them (Lima's ``appendArgsIfNoConflict``).

Not built (validate rejects them): TPM, extra networks, Windows guests. The
guest agent's virtio-serial port (item 24), which Lima adds on Windows hosts
only, is there on every host: lima-core reaches its guest agent through it
instead of an SSH forward.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys

from lima_core import filenames
from lima_core.guestagent import VIRTIO_PORT
from lima_core.mounts import ResolvedMount
from lima_core.network import SLIRP_GUEST_IP, SLIRP_NETWORK

log = logging.getLogger(__name__)

#: flags the conflict check may be applied to (never -drive, -device, -chardev, -netdev)
_SINGLE_VALUE = frozenset({"-m", "-cpu", "-machine", "-accel", "-smp", "-boot", "-kernel", "-append", "-initrd",
                           "-display"})
TCG_X86_64 = ["-machine", "q35,vmport=off", "-accel", "tcg,thread=multi,tb-size=512",
              "-global", "ICH9-LPC.disable_s3=1", "-global", "ICH9-LPC.disable_s4=1"]
AUDIO_ID = "snd0"


@dataclasses.dataclass(frozen=True)
class Spec:
    """Everything the command line depends on, resolved."""

    name: str
    instance_dir: str
    arch: str
    accel: str
    cpu: str
    memory_mib: int
    cpus: int
    #: path for ``-drive if=pflash``, or None (legacy BIOS, ppc64le, s390x)
    firmware: str | None = None
    #: the boot disk exists as ``<dir>/disk``; ``iso`` is set when ``<dir>/iso`` exists
    iso: bool = False
    #: direct kernel boot: each set only when its file exists
    kernel: bool = False
    kernel_cmdline: str | None = None
    initrd: bool = False
    ssh_address: str = "127.0.0.1"
    ssh_local_port: int = 0
    mac: str = "52:55:55:00:00:00"
    #: the shared directories (ResolvedMount from lima_core.mounts): 9p ones become -virtfs, virtiofs ones a
    #: vhost-user-fs device on ``virtiofsd-<index>.sock``, with the guest's memory shared (item 1)
    mounts: tuple[ResolvedMount, ...] = ()
    #: additionalDisks' datadisks, in lima.yaml's order (locked to the instance before the spec is made)
    additional_disks: tuple[str, ...] = ()
    #: video.display ("" means no -display), video.vnc.display
    display: str = "none"
    vnc_display: str = "127.0.0.1:0,to=9"
    #: audio.device ("" means no audio), audio.interface
    audio_device: str = ""
    audio_interface: str = ""
    qemu_version: tuple[int, int, int] = (0, 0, 0)
    #: extra words of $QEMU_SYSTEM_<ARCH>, placed first
    extra_args: tuple[str, ...] = ()

    def path(self, name: str) -> str:
        return os.path.join(self.instance_dir, name)


def arg_value(args: list[str], key: str) -> tuple[str, bool]:
    """Lima's ``argValue``: (value, present) of flag *key* in *args*."""
    for i, word in enumerate(args):
        if word == key:
            if i == len(args) - 1 or args[i + 1].startswith("-"):
                return "", True
            return args[i + 1], True
    return "", False


def append_if_no_conflict(args: list[str], key: str, value: str) -> None:
    """Append ``key value`` unless *key* is already there (then warn, as Lima does)."""
    assert key in _SINGLE_VALUE, f"{key} may appear more than once; append it directly"
    existing, present = arg_value(args, key)
    if present:
        log.warning("not adding QEMU argument %s %s, as it conflicts with %s %s", key, value, key, existing)
        return
    args += [key, value] if value else [key]


def machine_args(arch: str, accel: str) -> list[str]:
    """Item 3: the machine, with Lima's TCG flags on x86_64."""
    if arch == "x86_64":
        return list(TCG_X86_64) if accel == "tcg" else ["-machine", f"q35,accel={accel}"]
    machine = {"aarch64": "virt", "armv7l": "virt", "riscv64": "virt,acpi=off", "ppc64le": "pseries",
               "s390x": "s390-ccw-virtio"}[arch]
    return ["-machine", f"{machine},accel={accel}"]


def default_audio_device(platform: str | None = None) -> str:
    platform = platform or sys.platform
    return {"darwin": "coreaudio", "win32": "dsound"}.get(platform, "pa" if platform.startswith("linux") else "oss")


def audio_args(device: str, interface: str, qemu_version: tuple[int, int, int]) -> list[str]:
    """Item 18. :raises ValueError: an unknown interface."""
    if not device:
        return []
    backend = "none" if device == "none" else default_audio_device() if device == "default" else device
    out = ["-audiodev", f"{backend},id={AUDIO_ID}"]
    if interface == "virtio":
        if qemu_version >= (8, 2, 0):
            return out + ["-device", f"virtio-sound-pci,audiodev={AUDIO_ID}"]
        log.warning("audio.interface virtio needs QEMU 8.2 or later; using hda")
        interface = "hda"
    if interface in ("", "hda"):
        return out + ["-device", "ich9-intel-hda", "-device", f"hda-output,audiodev={AUDIO_ID}"]
    raise ValueError(f"audio.interface {interface!r} is not one of hda, virtio")


def opt(value: str) -> str:
    """*value* inside a QEMU option list (``file=...,if=virtio``): a comma is written ``,,``.

    Without this a path holding a comma (in LIMA_HOME, a mount location) would end the value and the
    rest would be read as further options.
    """
    return value.replace(",", ",,")


def ninep_args(m: ResolvedMount) -> list[str]:
    """Item 22 for one 9p mount."""
    options = f"local,mount_tag={opt(m.tag)},path={opt(m.location)},security_model={opt(m.security_model)}"
    return ["-virtfs", options if m.writable else options + ",readonly=on"]


def virtiofs_socket(instance_dir: str, index: int) -> str:
    """Where mount *index*'s virtiofsd listens (Lima's ``virtiofsd-<i>.sock``)."""
    return os.path.join(instance_dir, f"virtiofsd-{index}.sock")


def virtiofs_args(instance_dir: str, m: ResolvedMount) -> list[str]:
    """Item 22 for one virtiofs mount: the vhost-user-fs device and its socket. (A read-only mount is made so
    by the guest's ``ro`` mount option; QEMU's device has no read-only switch.)"""
    chardev = f"char-virtiofs-{m.index}"
    return ["-chardev", f"socket,id={chardev},path={opt(virtiofs_socket(instance_dir, m.index))}",
            "-device", f"vhost-user-fs-pci,queue-size={m.virtiofs_queue_size},chardev={chardev},tag={opt(m.tag)}"]


def shared_memory_args(memory_mib: int) -> list[str]:
    """Item 1's addition for virtiofs: guest memory virtiofsd can map, a file in /dev/shm shared with it."""
    return ["-object", f"memory-backend-file,id=virtiofs-shm,size={memory_mib << 20},mem-path=/dev/shm,share=on",
            "-numa", "node,memdev=virtiofs-shm"]


def _chardev_socket(chardev: str, sock: str, logfile: str | None = None) -> str:
    text = f"socket,id={chardev},path={opt(sock)},server=on,wait=off"
    return text + f",logfile={opt(logfile)}" if logfile else text


def build(spec: Spec) -> list[str]:
    """The arguments after the executable, in Lima's order (reference §4.5, numbered below)."""
    args = list(spec.extra_args)
    arch = spec.arch
    append_if_no_conflict(args, "-m", str(spec.memory_mib))  # 1
    if any(m.mount_type == "virtiofs" for m in spec.mounts):
        args += shared_memory_args(spec.memory_mib)
    append_if_no_conflict(args, "-cpu", spec.cpu)  # 2
    machine = machine_args(arch, spec.accel)  # 3
    append_if_no_conflict(args, "-machine", machine[1])
    if len(machine) > 2:
        append_if_no_conflict(args, "-accel", machine[3])
        args += machine[4:]
    append_if_no_conflict(args, "-smp", f"{spec.cpus},sockets=1,cores={spec.cpus},threads=1")  # 4
    if spec.firmware:  # 5
        args += ["-drive", f"if=pflash,format=raw,readonly=on,file={opt(spec.firmware)}"]
    args += ["-device", "qemu-xhci,id=usb-bus"]  # 7
    disk = spec.path(filenames.DISK)  # 8
    if spec.iso:
        args += ["-drive", f"file={opt(disk)},if=virtio,discard=on"]
    else:
        blk = "virtio-blk-ccw" if arch == "s390x" else "virtio-blk-pci"
        args += ["-drive", f"file={opt(disk)},if=none,discard=on,id=boot-disk",
                 "-device", f"{blk},drive=boot-disk,bootindex=1"]
    if spec.iso:  # 9
        append_if_no_conflict(args, "-boot", "order=d,splash-time=0,menu=on")
        args += ["-drive", f"file={opt(spec.path(filenames.ISO))},format=raw,media=cdrom,readonly=on"]
    else:
        append_if_no_conflict(args, "-boot", "order=c,splash-time=0,menu=on")
    for path in spec.additional_disks:  # 11 (item 6 locked them)
        args += ["-drive", f"file={opt(path)},if=virtio,discard=on"]
    args += ["-drive", f"id=cdrom0,if=none,format=raw,readonly=on,file={opt(spec.path(filenames.CIDATA_ISO))}",  # 12
             "-device", "virtio-scsi,id=scsi0", "-device", "scsi-cd,bus=scsi0.0,drive=cdrom0"]
    if spec.kernel:  # 13
        append_if_no_conflict(args, "-kernel", spec.path(filenames.KERNEL))
    if spec.kernel_cmdline is not None:
        append_if_no_conflict(args, "-append", spec.kernel_cmdline)
    if spec.initrd:
        append_if_no_conflict(args, "-initrd", spec.path(filenames.INITRD))
    args += ["-netdev", f"user,id=net0,net={SLIRP_NETWORK},dhcpstart={SLIRP_GUEST_IP},"  # 15
                        f"hostfwd=tcp:{spec.ssh_address}:{spec.ssh_local_port}-:22",
             "-device", f"{'virtio-net-ccw' if arch == 's390x' else 'virtio-net-pci'},netdev=net0,mac={spec.mac}"]
    args += ["-device", "virtio-rng-pci"]  # 17
    args += audio_args(spec.audio_device, spec.audio_interface, spec.qemu_version)  # 18
    pointer = "mouse"  # 19
    if spec.display:
        display = spec.display
        if display == "vnc":
            display, pointer = f"vnc={spec.vnc_display},password=on", "tablet"
        append_if_no_conflict(args, "-display", display)
    if spec.display != "none":
        args += ["-device", "virtio-vga" if arch in ("x86_64", "riscv64") else "virtio-gpu",
                 "-device", "virtio-keyboard-pci", "-device", f"virtio-{pointer}-pci"]
    else:
        args += ["-vga", "none"]
    args += ["-parallel", "none"]  # 20
    args += ["-chardev", _chardev_socket("char-serial", spec.path(filenames.SERIAL_SOCK),  # 21
                                         spec.path(filenames.SERIAL_LOG)),
             "-serial", "chardev:char-serial"]
    if arch in ("aarch64", "armv7l"):
        args += ["-chardev", _chardev_socket("char-serial-pci", spec.path(filenames.SERIALP_SOCK),
                                             spec.path(filenames.SERIALP_LOG)),
                 "-device", "pci-serial,chardev=char-serial-pci"]
    args += ["-chardev", _chardev_socket("char-serial-virtio", spec.path(filenames.SERIALV_SOCK),
                                         spec.path(filenames.SERIALV_LOG)),
             "-device", f"virtio-serial-pci,id=virtio-serial0,max_ports={2 if arch == 's390x' else 1}",
             "-device", "virtconsole,chardev=char-serial-virtio,id=console0"]
    for m in spec.mounts:  # 22
        if m.mount_type == "9p":
            args += ninep_args(m)
        elif m.mount_type == "virtiofs":
            args += virtiofs_args(spec.instance_dir, m)
    args += ["-chardev", _chardev_socket("char-qmp", spec.path(filenames.QMP_SOCK)),  # 23
             "-qmp", "chardev:char-qmp"]
    args += ["-chardev", f"socket,path={opt(spec.path(filenames.GUEST_AGENT_SOCK))},server=on,wait=off,id=qga0",  # 24
             "-device", "virtio-serial", "-device", f"virtserialport,chardev=qga0,name={VIRTIO_PORT}"]
    args += ["-name", f"lima-{spec.name}", "-pidfile", spec.path(filenames.pid_file("qemu"))]  # 25
    return args


def with_ssh_port(args: list[str], port: int) -> list[str]:
    """*args*, a command line :func:`build` made, with the guest's SSH forwarded from host port *port* (item 15).

    :raises ValueError: *args* has no such forward.
    """
    out = list(args)
    for i in range(len(out) - 1):
        if out[i] == "-netdev" and out[i + 1].startswith("user,id=net0,"):
            value, found = re.subn(r"(,hostfwd=tcp:[^,]*:)\d+(-:22)(?=,|$)", rf"\g<1>{port}\g<2>", out[i + 1])
            if found == 1:
                out[i + 1] = value
                return out
    raise ValueError("the QEMU command line has no SSH forward (-netdev user,id=net0,...,hostfwd=tcp:...-:22)")


#: the unix sockets qemu serves (made 0600 once it runs)
SOCKETS = (filenames.SERIAL_SOCK, filenames.SERIALP_SOCK, filenames.SERIALV_SOCK, filenames.QMP_SOCK,
           filenames.GUEST_AGENT_SOCK)
#: files Lima deletes before starting qemu (items 21, 23 and 24)
STALE_FILES = (filenames.SERIAL_SOCK, filenames.SERIAL_LOG, filenames.SERIALP_SOCK, filenames.SERIALP_LOG,
               filenames.SERIALV_SOCK, filenames.SERIALV_LOG, filenames.QMP_SOCK, filenames.GUEST_AGENT_SOCK)
