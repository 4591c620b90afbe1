"""The wsl2 driver's hooks: Lima's wsl2 driver (Windows Subsystem for Linux 2) for lima-core.

The instance's distro is ``lima-<name>``. Its state lives in WSL, on the host
side, so ``inspect_status`` reports it for real (and ``stop`` works from any
process: it is ``wsl --terminate``). ``start`` imports the distro on first
use, starts it, runs Lima's boot script in it and keeps it alive; the start
handle ends when the distro stops.

Not implemented, so the host reports them unsupported: snapshots, the GUI
(WSLg is not used), VNC. ``create`` and ``create_disk`` have nothing to do.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
from pathlib import Path
from typing import Any

from lima_core import bootscripts, hookimpl
from lima_core.errors import ConfigError, DriverError, LimaError, StartFailed
from lima_core.limatype import STATUS_BROKEN, STATUS_RUNNING, STATUS_UNINITIALIZED, DriverFeatures, Info, Instance
from lima_core.starthandle import StartHandle

from . import guestagent, provision, sshaddress, status, validation, wsl

log = logging.getLogger("lima_driver_wsl2")

NAME = validation.NAME
SSH_PORT = 22


class WSL2Driver:
    """Lima's wsl2 driver. See the module docstring."""

    name = NAME

    def __init__(self) -> None:
        self.instance: Instance | None = None
        self.vsock_port = guestagent.free_vsock_port()
        self._stopping = threading.Event()
        #: the boot and keep-alive wsl.exe processes this object started
        self._children: list[subprocess.Popen] = []

    def _configured(self) -> Instance:
        if self.instance is None or self.instance.config is None:
            raise DriverError(f"driver {self.name!r} was not configured")
        return self.instance

    @property
    def distro(self) -> str:
        return wsl.distro_name(self._configured().name)

    # -- Info and Configure ---------------------------------------------------------------

    @hookimpl
    def info(self) -> Info:
        return Info(name=self.name, vsock_port=self.vsock_port, virtio_port="",
                    instance_dir=self.instance.dir if self.instance else "",
                    features=DriverFeatures(dynamic_ssh_address=True, static_ssh_port=True,
                                            skip_socket_forwarding=True, no_cloud_init=True))

    @hookimpl
    def configure(self, instance: Instance) -> None:
        if instance.config is None:
            raise ConfigError("the instance has no configuration")
        if instance.config.vm_type is None:
            instance.config.vm_type = NAME
        if instance.config.mount_type is None:
            instance.config.mount_type = validation.MOUNT_TYPE
        # sshd in the distro listens on 22 (staticSSHPort): what inspect_status reports, and what the
        # host agent must use (Lima's host agent gets it from InspectStatus before it configures).
        instance.ssh_local_port = SSH_PORT
        self.instance = instance

    @hookimpl
    def validate(self) -> None:
        validation.validate(self._configured().config)  # type: ignore[arg-type]

    @hookimpl
    def check_host(self) -> None:
        validation.check_host()

    # -- Lifecycle ------------------------------------------------------------------------

    @hookimpl
    def start(self) -> StartHandle:
        inst = self._configured()
        cfg = inst.config
        assert cfg is not None
        distro, inst_dir = self.distro, Path(inst.dir)
        if cfg.ssh is not None and cfg.ssh.over_vsock:
            log.warning("ssh.overVsock is ignored by the WSL2 driver")
        if cfg.audio is not None and cfg.audio.interface:
            log.warning("audio.interface is ignored by the WSL2 driver")
        log.info("starting the WSL2 distro %s", distro)
        entry = status.entry(inst.name)
        if entry.version == "1":
            raise StartFailed(f"the WSL distribution {distro} is registered as WSL 1, where the guest agent cannot "
                              f"run (it needs WSL 2's Hyper-V socket); convert it with `wsl --set-version {distro} 2`")
        if entry.state == STATUS_UNINITIALIZED:
            rootfs = provision.ensure_rootfs(inst_dir, cfg)
            log.info("importing %s from %s into %s", distro, rootfs, inst_dir)
            wsl.import_distro(distro, str(inst_dir), str(rootfs))
        wsl.start_distro(distro)
        self._stopping.clear()
        handle = StartHandle(on_cancel=lambda: self._terminate_if_running(inst.name))
        script = provision.write_boot_script(inst_dir)
        try:
            linux_path = provision.to_linux_path(distro, str(script))
        except LimaError:
            script.unlink(missing_ok=True)
            raise
        boot = wsl.popen(wsl.distro_command(distro, "bash", linux_path))
        threading.Thread(target=self._follow_boot, args=(boot, script, handle), name=f"wsl2-boot-{inst.name}",
                         daemon=True).start()
        keep_alive = wsl.popen(wsl.distro_command(distro, *provision.KEEP_ALIVE))
        self._children = [boot, keep_alive]
        threading.Thread(target=self._follow_keep_alive, args=(keep_alive, inst.name, handle),
                         name=f"wsl2-keepalive-{inst.name}", daemon=True).start()
        return handle

    def _follow_boot(self, proc: subprocess.Popen, script: Path, handle: StartHandle) -> None:
        result = wsl.finished(proc)
        script.unlink(missing_ok=True)
        log.debug("%s: out=%r err=%r", proc.args, result.stdout, result.stderr)
        if not result.ok and not self._stopping.is_set():
            handle.report(f"error running the wsl command that executes boot.sh: {result.describe()}; see "
                          f"{provision.LOG_FILE} in the guest")

    def _follow_keep_alive(self, proc: subprocess.Popen, instance_name: str, handle: StartHandle) -> None:
        result = wsl.finished(proc)
        if not self._stopping.is_set():
            try:
                state = status.get(instance_name)
            except LimaError as exc:
                state = f"unknown ({exc})"
            if state == STATUS_RUNNING:
                handle.report(f"error running the wsl keep-alive command: {result.describe()}")
            else:
                log.info("the WSL2 distro %s is %s", wsl.distro_name(instance_name), state)
        handle.close()

    def _terminate_if_running(self, instance_name: str) -> None:
        """The host went away without stop (Lima: the start context ended): stop a running distro."""
        with contextlib.suppress(LimaError):
            self._end(instance_name, only_if_running=True)

    def _end(self, instance_name: str, only_if_running: bool = False) -> None:
        self._stopping.set()
        distro = wsl.distro_name(instance_name)
        if not only_if_running or status.get(instance_name) == STATUS_RUNNING:
            wsl.terminate(distro)
        # A wsl.exe of ours that had not reached the distro yet would start it again: end them, then
        # make sure the distro stayed stopped.
        late = [p for p in self._children if p.poll() is None]
        for proc in late:
            with contextlib.suppress(OSError):
                proc.kill()
        if late and status.get(instance_name) == STATUS_RUNNING:
            wsl.terminate(distro)

    @hookimpl
    def stop(self) -> None:
        log.info("shutting down the WSL2 distro %s", self.distro)
        self._end(self._configured().name)

    @hookimpl
    def delete(self) -> None:
        name = self._configured().name
        state = status.get(name)
        if state == STATUS_UNINITIALIZED:
            log.info("the WSL2 distro %s is not registered; nothing to unregister", self.distro)
            return
        wsl.unregister(self.distro)

    @hookimpl
    def inspect_status(self, instance: Instance) -> str:
        try:
            instance.status = status.get(instance.name)
        except LimaError as exc:
            instance.status = STATUS_BROKEN
            instance.errors.append(exc.message)
        instance.ssh_local_port = SSH_PORT
        instance.cpus = instance.memory = instance.disk = 0  # WSL shares the host's; Lima shows none
        if instance.status == STATUS_RUNNING:
            try:
                instance.ssh_address = sshaddress.discover(instance.name)
            except LimaError as exc:
                instance.errors.append(exc.message)
        return instance.status

    @hookimpl
    def boot_scripts(self) -> dict[str, bytes]:
        return bootscripts.load(__package__)

    # -- guest agent and SSH ----------------------------------------------------------------

    @hookimpl
    def forward_guest_agent(self) -> bool:
        return self.vsock_port == 0

    @hookimpl
    def guest_agent_conn(self) -> Any:
        if self.vsock_port == 0:
            return None  # forwarded over SSH by the host agent
        return guestagent.connect(self.distro, self.vsock_port), "vsock"

    @hookimpl
    def ssh_address(self) -> str:
        return "127.0.0.1"
