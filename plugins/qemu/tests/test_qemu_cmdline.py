"""The command line for representative configurations, argument by argument, in Lima's order (§4.5)."""

from __future__ import annotations

import logging

import pytest
from lima_core.mounts import ResolvedMount

from lima_driver_qemu import cmdline
from lima_driver_qemu.cmdline import Spec

D = "/tmp/lq/inst"
TAIL = ["-parallel", "none",
        "-chardev", f"socket,id=char-serial,path={D}/serial.sock,server=on,wait=off,logfile={D}/serial.log",
        "-serial", "chardev:char-serial",
        "-chardev", f"socket,id=char-serial-virtio,path={D}/serialv.sock,server=on,wait=off,logfile={D}/serialv.log",
        "-device", "virtio-serial-pci,id=virtio-serial0,max_ports=1",
        "-device", "virtconsole,chardev=char-serial-virtio,id=console0"]
QMP_AND_NAME = ["-chardev", f"socket,id=char-qmp,path={D}/qmp.sock,server=on,wait=off", "-qmp", "chardev:char-qmp",
                # item 24, the guest agent's port (Lima: Windows hosts only; lima-core: every host)
                "-chardev", f"socket,path={D}/ga.sock,server=on,wait=off,id=qga0", "-device", "virtio-serial",
                "-device", "virtserialport,chardev=qga0,name=io.lima-vm.guest_agent.0",
                "-name", "lima-inst", "-pidfile", f"{D}/qemu.pid"]
CIDATA = ["-drive", f"id=cdrom0,if=none,format=raw,readonly=on,file={D}/cidata.iso",
          "-device", "virtio-scsi,id=scsi0", "-device", "scsi-cd,bus=scsi0.0,drive=cdrom0"]
BOOT_DISK = ["-drive", f"file={D}/disk,if=none,discard=on,id=boot-disk",
             "-device", "virtio-blk-pci,drive=boot-disk,bootindex=1",
             "-boot", "order=c,splash-time=0,menu=on"]


def net(port: int = 60022) -> list[str]:
    return ["-netdev", f"user,id=net0,net=192.168.5.0/24,dhcpstart=192.168.5.15,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=net0,mac=52:55:55:12:34:56"]


def spec(**kw: object) -> Spec:
    base: dict[str, object] = dict(name="inst", instance_dir=D, arch="x86_64", accel="tcg", cpu="max", memory_mib=512,
                                   cpus=1, ssh_local_port=60022, mac="52:55:55:12:34:56", qemu_version=(7, 2, 22))
    base.update(kw)
    return Spec(**base)  # type: ignore[arg-type]


def mount(i: int, location: str, writable: bool) -> ResolvedMount:
    return ResolvedMount(i, location, location, writable, f"lima-tag{i}", "9p")


def test_x86_64_tcg_legacy_bios_direct_kernel_boot() -> None:
    args = cmdline.build(spec(kernel=True, kernel_cmdline="console=ttyS0 quiet panic=-1", initrd=True))
    assert args == [
        "-m", "512",
        "-cpu", "max",
        "-machine", "q35,vmport=off", "-accel", "tcg,thread=multi,tb-size=512",
        "-global", "ICH9-LPC.disable_s3=1", "-global", "ICH9-LPC.disable_s4=1",
        "-smp", "1,sockets=1,cores=1,threads=1",
        "-device", "qemu-xhci,id=usb-bus",
        *BOOT_DISK,
        *CIDATA,
        "-kernel", f"{D}/kernel", "-append", "console=ttyS0 quiet panic=-1", "-initrd", f"{D}/initrd",
        *net(),
        "-device", "virtio-rng-pci",
        "-display", "none", "-vga", "none",
        *TAIL,
        *QMP_AND_NAME,
    ]


def test_kvm_with_firmware_and_four_cpus() -> None:
    fw = "/usr/share/OVMF/OVMF_CODE.fd"
    args = cmdline.build(spec(accel="kvm", cpu="host", cpus=4, memory_mib=4096, firmware=fw))
    assert args[:12] == ["-m", "4096", "-cpu", "host", "-machine", "q35,accel=kvm",
                         "-smp", "4,sockets=1,cores=4,threads=1",
                         "-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
                         "-device", "qemu-xhci,id=usb-bus"]
    assert "-accel" not in args and "-global" not in args and "-kernel" not in args


def test_9p_mounts_read_only_unless_writable() -> None:
    args = cmdline.build(spec(mounts=(mount(0, "/home/u", False), mount(1, "/tmp/lima", True))))
    virtfs = [args[i + 1] for i, a in enumerate(args) if a == "-virtfs"]
    assert virtfs == ["local,mount_tag=lima-tag0,path=/home/u,security_model=none,readonly=on",
                      "local,mount_tag=lima-tag1,path=/tmp/lima,security_model=none"]
    # item 22 sits between the serial consoles (21) and QMP (23)
    assert args.index("-virtfs") > args.index("virtconsole,chardev=char-serial-virtio,id=console0")
    assert args.index("-virtfs") < args.index("-qmp")


def test_9p_security_model_is_passed() -> None:
    m = ResolvedMount(0, "/srv", "/srv", True, "lima-x", "9p", security_model="mapped-xattr")
    assert cmdline.ninep_args(m) == ["-virtfs", "local,mount_tag=lima-x,path=/srv,security_model=mapped-xattr"]


def test_vnc_display_uses_password_and_tablet() -> None:
    args = cmdline.build(spec(display="vnc", vnc_display="127.0.0.1:0,to=9"))
    i = args.index("-display")
    assert args[i:i + 8] == ["-display", "vnc=127.0.0.1:0,to=9,password=on", "-device", "virtio-vga",
                             "-device", "virtio-keyboard-pci", "-device", "virtio-tablet-pci"]
    assert "-vga" not in args


def test_other_display_uses_mouse() -> None:
    args = cmdline.build(spec(display="gtk"))
    assert "virtio-mouse-pci" in args and "gtk" in args


def test_iso_case_boots_from_cdrom_with_a_virtio_disk() -> None:
    args = cmdline.build(spec(iso=True))
    i = args.index("qemu-xhci,id=usb-bus")
    assert args[i + 1:i + 7] == ["-drive", f"file={D}/disk,if=virtio,discard=on",
                                 "-boot", "order=d,splash-time=0,menu=on",
                                 "-drive", f"file={D}/iso,format=raw,media=cdrom,readonly=on"]
    assert args[i + 7:i + 13] == CIDATA


def test_aarch64_gets_virt_machine_pci_serial_and_gpu() -> None:
    args = cmdline.build(spec(arch="aarch64", accel="hvf", cpu="host", display="vnc"))
    assert args[args.index("-machine") + 1] == "virt,accel=hvf"
    assert "pci-serial,chardev=char-serial-pci" in args
    assert "virtio-gpu" in args


def test_ssh_address_and_port_in_hostfwd() -> None:
    args = cmdline.build(spec(ssh_address="0.0.0.0", ssh_local_port=2222))
    assert "user,id=net0,net=192.168.5.0/24,dhcpstart=192.168.5.15,hostfwd=tcp:0.0.0.0:2222-:22" in args


def test_audio_hda_and_virtio() -> None:
    assert cmdline.audio_args("none", "", (7, 2, 0)) == ["-audiodev", "none,id=snd0", "-device", "ich9-intel-hda",
                                                         "-device", "hda-output,audiodev=snd0"]
    assert cmdline.audio_args("pa", "virtio", (9, 0, 0)) == ["-audiodev", "pa,id=snd0",
                                                             "-device", "virtio-sound-pci,audiodev=snd0"]
    assert "ich9-intel-hda" in cmdline.audio_args("pa", "virtio", (8, 1, 0))  # too old: hda
    assert cmdline.audio_args("", "hda", (9, 0, 0)) == []
    with pytest.raises(ValueError):
        cmdline.audio_args("pa", "ac97", (9, 0, 0))


def test_extra_args_from_the_environment_come_first_and_win(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        args = cmdline.build(spec(extra_args=("-m", "2048", "-d", "guest_errors")))
    assert args[:4] == ["-m", "2048", "-d", "guest_errors"]
    assert args.count("-m") == 1 and "512" not in args
    assert "conflicts with -m 2048" in caplog.text


def test_arg_value() -> None:
    assert cmdline.arg_value(["-m", "1", "-snapshot"], "-m") == ("1", True)
    assert cmdline.arg_value(["-snapshot", "-m", "1"], "-snapshot") == ("", True)
    assert cmdline.arg_value([], "-m") == ("", False)


@pytest.mark.parametrize(("arch", "machine"), [("riscv64", "virt,acpi=off,accel=tcg"), ("ppc64le", "pseries,accel=tcg"),
                                               ("s390x", "s390-ccw-virtio,accel=tcg"), ("armv7l", "virt,accel=tcg")])
def test_machine_per_arch(arch: str, machine: str) -> None:
    assert cmdline.machine_args(arch, "tcg") == ["-machine", machine]


def test_additional_disks_after_the_boot_disk_in_list_order() -> None:
    """Lima's item 11: each datadisk as a virtio drive, after the boot disk (and ISO), before cidata; a comma in
    the path is doubled, as in every option list."""
    args = cmdline.build(spec(additional_disks=("/h/_disks/a/datadisk", "/h/_disks/b,c/datadisk")))
    i = args.index("order=c,splash-time=0,menu=on")
    assert args[i + 1:i + 5] == ["-drive", "file=/h/_disks/a/datadisk,if=virtio,discard=on",
                                 "-drive", "file=/h/_disks/b,,c/datadisk,if=virtio,discard=on"]
    assert args[i + 5:i + 11] == CIDATA
