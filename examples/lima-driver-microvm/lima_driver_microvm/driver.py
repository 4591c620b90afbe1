"""MicrovmDriver: the hooks. All state lives in the instance directory.

Files it uses there (names from ``lima_core.filenames``): ``kernel``,
``kernel.cmdline``, ``initrd``, ``disk`` (from ``image``), ``cidata.iso``;
QEMU's ``microvm.pid`` (QEMU writes it and removes it on exit; the host reads
``<vmType>.pid``), ``qmp.sock``, ``serial.sock``/``serial.log``, and
``microvm.stderr.log`` for QEMU's own messages.

Options, under ``vmOpts.microvm`` in lima.yaml:

``accel: auto|kvm|tcg``    auto (default) probes KVM; ``LIMA_MICROVM_ACCEL`` overrides
``shutdownTimeout: 60``    seconds ``stop`` presses the ACPI power button (every 2 s) before ``quit``
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
from lima_core import (
    DriverFeatures,
    Info,
    Instance,
    StartHandle,
    filenames,
    hookimpl,
    mounts,
    network,
    pidfile,
    processes,
)
from lima_core.errors import ConfigError, DriverError, HostUnsupported, StartFailed, ValidationError

from . import accel, cmdline, qmp

log = logging.getLogger("lima_driver_microvm")

NAME = "microvm"
QEMU = "qemu-system-x86_64"
QEMU_ENV = "LIMA_MICROVM_QEMU"
STDERR_LOG = "microvm.stderr.log"
MOUNT_TYPES = ("9p", "reverse-sshfs")
#: microvm has eight virtio-mmio slots; disk, cidata, NIC and RNG take four.
MAX_SHARES = 4
DEFAULT_SHUTDOWN_TIMEOUT = 60.0
#: stop presses the power button again after this many seconds
PRESS_INTERVAL = 2.0
READY_TIMEOUT = 10.0
#: Unix socket paths must fit sockaddr_un (108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH = 104


def qemu_binary() -> str:
    """``$LIMA_MICROVM_QEMU`` or qemu-system-x86_64 on PATH; HostUnsupported if there is none."""
    wanted = os.environ.get(QEMU_ENV) or QEMU
    found = shutil.which(wanted)
    if found is None:
        raise HostUnsupported(f"microvm needs {wanted} (QEMU for x86_64) on PATH; on Debian: "
                              "apt-get install qemu-system-x86")
    return found


@functools.cache
def _has_microvm(qemu: str) -> bool:
    try:
        out = subprocess.run([qemu, "-machine", "help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split()[:1] == ["microvm"] for line in out.splitlines())


class MicrovmDriver:
    """Boots the instance's kernel on QEMU's microvm machine. See the module docstring."""

    def __init__(self) -> None:
        self.instance: Instance | None = None

    # -- helpers ----------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        if self.instance is None:
            raise DriverError("driver 'microvm' was not configured")
        return Path(self.instance.dir)

    def _opts(self) -> dict[str, Any]:
        assert self.instance is not None and self.instance.config is not None
        return self.instance.config.vm_opts_for(NAME)

    @property
    def _pid_path(self) -> Path:
        return self.dir / filenames.pid_file(NAME)

    def _vm(self) -> psutil.Process | None:
        """The running QEMU of this instance, proven by its command line naming our pid file."""
        return pidfile.read(self._pid_path, expect=str(self._pid_path)).process

    def _shutdown_timeout(self) -> float:
        try:
            return float(self._opts().get("shutdownTimeout", DEFAULT_SHUTDOWN_TIMEOUT))
        except (TypeError, ValueError):
            raise ConfigError("vmOpts.microvm.shutdownTimeout must be a number of seconds") from None

    # -- Info and Configure -----------------------------------------------------------------

    @hookimpl
    def info(self) -> Info:
        return Info(name=NAME, instance_dir=self.instance.dir if self.instance else "",
                    features=DriverFeatures(supported_image_formats=["qcow2", "raw"]))

    @hookimpl
    def configure(self, instance: Instance) -> None:
        cfg = instance.config
        if cfg is None:
            raise ConfigError("the instance has no configuration")
        cfg.vm_type = cfg.vm_type or NAME
        if cfg.mount_type in (None, "", "default"):
            cfg.mount_type = "9p"
        self.instance = instance
        accel.requested(self._opts())
        self._shutdown_timeout()

    @hookimpl
    def check_host(self) -> None:
        qemu = qemu_binary()
        if not _has_microvm(qemu):
            raise HostUnsupported(f"{qemu} has no microvm machine (see `{qemu} -machine help`); "
                                  "QEMU 4.2 or later built with microvm is needed")

    @hookimpl
    def validate(self) -> None:
        self.check_host()
        assert self.instance is not None and self.instance.config is not None
        cfg = self.instance.config
        if (cfg.arch or "x86_64") != "x86_64":
            raise ValidationError(f"microvm runs x86_64 guests only; this instance's arch is {cfg.arch}")
        image = cfg.image_for_arch("x86_64")
        if image is None or image.kernel is None:
            raise ValidationError("microvm has no firmware and boots only a kernel: give the image a "
                                  "`kernel:` (and usually an `initrd:`) in lima.yaml")
        if cfg.mount_type not in MOUNT_TYPES:
            raise ValidationError(f"microvm supports mountType {' or '.join(MOUNT_TYPES)}, not {cfg.mount_type!r}")
        if cfg.mount_type == "9p" and len(cfg.mounts or []) > MAX_SHARES:
            raise ValidationError(f"microvm can share at most {MAX_SHARES} directories over 9p "
                                  f"(it has eight virtio-mmio slots); this instance has {len(cfg.mounts or [])}")
        if cfg.networks:
            raise ValidationError("microvm supports only the default user-mode network; remove `networks:`")
        display = cfg.video.display if cfg.video else None
        if display not in (None, "", "none", "default"):
            raise ValidationError(f"microvm has no display; set video.display to none (not {display!r})")
        for name in (filenames.QMP_SOCK, filenames.SERIAL_SOCK):
            if len(str(self.dir / name)) >= MAX_SOCKET_PATH:
                raise ValidationError(f"the instance directory {self.dir} is too long for the unix socket "
                                      f"{name}; use a shorter LIMA_HOME")

    # -- Lifecycle --------------------------------------------------------------------------

    @hookimpl
    def create(self) -> None:
        """Nothing to provision: the VM is fully described by lima.yaml and the files the host fetched."""

    @hookimpl
    def create_disk(self) -> None:
        disk, image = self.dir / filenames.DISK, self.dir / filenames.IMAGE
        if disk.exists() or not image.exists():
            return
        if _is_iso9660(image):
            raise ConfigError("microvm cannot boot an ISO image (no firmware, no CD-ROM); use a disk image "
                              "with a kernel")
        image.rename(disk)
        self._grow(disk)

    def _grow(self, disk: Path) -> None:
        assert self.instance is not None and self.instance.config is not None
        want = self.instance.config.disk_bytes
        info = _qemu_img_info(disk)
        if want and info and info.get("virtual-size", 0) < want:
            subprocess.run(["qemu-img", "resize", "-f", info["format"], str(disk), str(want)],
                           capture_output=True, check=False)

    @hookimpl
    def start(self) -> StartHandle:
        assert self.instance is not None and self.instance.config is not None
        cfg = self.instance.config
        if self._vm() is not None:
            raise StartFailed(f"the microvm of {self.dir.name} is already running (pid file {self._pid_path})")
        kernel = self.dir / filenames.KERNEL
        if not kernel.exists():
            raise StartFailed(f"{kernel} is missing: microvm boots the kernel named in lima.yaml "
                              "(images[].kernel), which the host fetches on create")
        qemu = qemu_binary()
        chosen = accel.choose(qemu, kernel, accel.requested(self._opts()))
        (log.info if chosen.name == "kvm" else log.warning)("microvm accelerator: %s (%s)", chosen.name,
                                                              chosen.reason)
        image = cfg.image_for_arch("x86_64")
        base_cmdline = _read(self.dir / filenames.KERNEL_CMDLINE)
        if base_cmdline is None:
            base_cmdline = (image.kernel.cmdline if image and image.kernel else None) or ""
        disk = self.dir / filenames.DISK
        initrd = self.dir / filenames.INITRD
        cidata = self.dir / filenames.CIDATA_ISO
        disk_info = _qemu_img_info(disk) if disk.exists() else None
        shares = tuple(cmdline.Share(m.tag, m.location, m.writable, m.security_model)
                       for m in mounts.resolve(cfg) if m.mount_type == "9p")
        for share in shares:
            Path(share.path).mkdir(parents=True, exist_ok=True)
        plan = cmdline.Plan(
            qemu=qemu, accel=chosen.name, cpus=cfg.cpus or 1, memory_mib=max(64, cfg.memory_bytes >> 20),
            kernel=kernel, append=cmdline.kernel_append(base_cmdline, chosen.name, accel.host_tsc_khz()),
            initrd=initrd if initrd.exists() else None,
            disk=disk if disk.exists() else None, disk_format=(disk_info or {}).get("format", "raw"),
            cidata=cidata if cidata.exists() else None,
            ssh_port=self.instance.ssh_local_port or 0, mac=network.mac_address(self.dir),
            qmp_sock=self.dir / filenames.QMP_SOCK, serial_sock=self.dir / filenames.SERIAL_SOCK,
            serial_log=self.dir / filenames.SERIAL_LOG, pid_file=self._pid_path, name=self.dir.name,
            shares=shares)
        if plan.ssh_port <= 0:
            raise StartFailed("no SSH port was allocated for the instance (the host sets sshLocalPort)")
        for stale in (plan.qmp_sock, plan.serial_sock):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        args = cmdline.build(plan)
        log.debug("starting %s", " ".join(args))
        with open(self.dir / STDERR_LOG, "ab") as err:
            try:
                proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                        start_new_session=True, close_fds=True)
            except OSError as exc:
                raise StartFailed(f"cannot run {qemu}: {exc.strerror}") from exc
        self._wait_ready(proc, plan)
        return StartHandle.for_process(proc, "microvm (QEMU)", on_cancel=lambda: processes.kill(proc))

    def _wait_ready(self, proc: subprocess.Popen, plan: cmdline.Plan) -> None:
        """Until QEMU has written its pid file and answers QMP; StartFailed with its stderr otherwise."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise StartFailed(f"QEMU {processes.describe_exit(proc.returncode)}: {self._stderr_tail()}")
            if plan.pid_file.exists() and plan.qmp_sock.exists():
                try:
                    status = qmp.execute(plan.qmp_sock, "query-status", timeout=2)
                    log.debug("QEMU is up: %s", status)
                    return
                except DriverError:
                    pass
            if time.monotonic() > deadline:
                processes.kill(proc)
                raise StartFailed(f"QEMU did not answer on {plan.qmp_sock.name} within {READY_TIMEOUT:g} s: "
                                  f"{self._stderr_tail()}")
            time.sleep(0.02)

    def _stderr_tail(self) -> str:
        return processes.log_tail(self.dir / STDERR_LOG, lines=3) or "(no output)"

    @hookimpl
    def stop(self) -> None:
        """ACPI power button (the guest powers off), then QMP quit, then SIGKILL; from any process."""
        vm = self._vm()
        if vm is None:
            return
        sock = self.dir / filenames.QMP_SOCK
        timeout = self._shutdown_timeout()
        deadline = time.monotonic() + timeout
        try:
            # A press before the guest's ACPI button driver is up is lost (a guest still
            # booting), so the button is pressed again every PRESS_INTERVAL seconds.
            while True:
                qmp.execute(sock, "system_powerdown")
                left = deadline - time.monotonic()
                if processes.wait_exit(vm, max(0.0, min(PRESS_INTERVAL, left))):
                    return
                if time.monotonic() >= deadline:
                    break
            log.warning("the guest did not power off within %g s; ending QEMU", timeout)
        except DriverError as exc:
            if not vm.is_running():
                return
            log.warning("%s; ending QEMU", exc.message)
        with contextlib.suppress(DriverError):
            qmp.execute(sock, "quit", expect_hangup=True)
        if processes.wait_exit(vm, 5):
            return
        processes.kill(vm, 5)
        pidfile.remove(self._pid_path)

    @hookimpl
    def boot_scripts(self) -> dict[str, bytes]:
        return {"boot.Linux/05-microvm.sh": b"#!/bin/sh\n# lima-driver-microvm: nothing to set up in the guest yet.\n"
                                            b"echo \"lima-driver-microvm: guest booted on QEMU microvm\"\n"}


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _is_iso9660(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(0x8001)
            return f.read(5) == b"CD001"
    except OSError:
        return False


def _qemu_img_info(path: Path) -> dict[str, Any] | None:
    """``qemu-img info`` of *path* (format, virtual-size), or a guess from the magic without qemu-img."""
    try:
        out = subprocess.run(["qemu-img", "info", "--output=json", "--force-share", str(path)],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            return json.loads(out.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        pass
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError:
        return None
    return {"format": "qcow2" if magic == b"QFI\xfb" else "raw", "virtual-size": path.stat().st_size}
