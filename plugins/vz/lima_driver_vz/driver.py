"""The vz driver's hooks: Lima's vz driver (Virtualization.framework) for lima-core.

State is per instance: ``configure`` stores the instance and the
``vmOpts.vz`` options; the running VM lives in :mod:`.running`, shared by
every driver object of the process. Framework access goes through
:mod:`.framework` (injectable, see there); host facts through
:class:`~.hostinfo.HostFacts` (injectable for tests).

``stop`` from another process: the VM lives in the process named by
``vz.pid``; that process is sent SIGTERM (the host agent and lima-core's
driver server both end the start stream on SIGTERM, which asks the guest to
power off before they exit), and ``stop`` waits up to 30 s for it to exit.
Snapshots, display passwords and VNC are not implemented, so the host reports
"driver 'vz' does not support snapshots" (or "a display").

``suspend`` (lima-core's, macOS 14 or later) pauses the VM, has the framework
save its state to ``vz.savedstate`` (``saveMachineStateToURL``), and stops it;
``resume`` builds the same configuration, restores the state into it
(``restoreMachineStateFromURL``, which refuses a file made for another
configuration) and resumes it. Beside the state, ``vz.savedstate.json``
records the disk's identity: a disk changed meanwhile is refused at resume,
since the saved memory would corrupt it. ``stop`` with no VM running discards
the saved state, as does a ``start``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from lima_core import atomicfile, bootscripts, filenames, hookimpl, pidfile, suspended
from lima_core.errors import ConfigError, DriverError, DriverTimeout, HostUnsupported, NoDisplay, StartFailed
from lima_core.limatype import DriverFeatures, Info, Instance
from lima_core.starthandle import StartHandle

from . import config, datadisks, disk, entitlement, hostinfo, identifier, options, running, validation
from .framework import Bindings
from .framework import load as load_framework
from .framework.machine import STOPPED, Machine
from .hostinfo import HostFacts
from .options import VZOptions
from .sshforward import DHCPD_LEASES, Forwarder, PreferFirst, lease_ip, tcp_dialer

log = logging.getLogger("lima_driver_vz")

NAME = options.NAME
VSOCK_PORT = 2222
GUEST_SSH_PORT = 22
STOP_TIMEOUT = 30.0
STOP_POLL = 0.5
SSH_READY_TIMEOUT = 60.0
SUPPORTED_IMAGE_FORMATS = ["raw", "asif"]


class VZDriver:
    """Lima's vz driver. See the module docstring."""

    name = NAME

    def __init__(self, framework: Bindings | None = None, host: HostFacts | None = None,
                 leases: Path = DHCPD_LEASES) -> None:
        self._framework = framework
        self._facts = host
        self._leases = leases
        self.instance: Instance | None = None
        self.options = VZOptions()

    # -- helpers --------------------------------------------------------------------------

    @property
    def facts(self) -> HostFacts:
        if self._facts is None:
            self._facts = HostFacts.current()
        return self._facts

    def _bindings(self) -> Bindings:
        return self._framework if self._framework is not None else load_framework()

    def _configured(self) -> Instance:
        if self.instance is None or self.instance.config is None:
            raise DriverError(f"driver {self.name!r} was not configured")
        return self.instance

    @property
    def dir(self) -> Path:
        return Path(self._configured().dir)

    def _display(self) -> str:
        return validation.display_of(self._configured().config)  # type: ignore[arg-type]

    def _can_run_gui(self) -> bool:
        return self.instance is not None and self._display() in ("vz", "default")

    # -- Info and Configure ---------------------------------------------------------------

    @hookimpl
    def info(self) -> Info:
        rosetta = self.options.rosetta_enabled and self.facts.arch == "aarch64" and self.facts.is_macos
        return Info(name=self.name, vsock_port=VSOCK_PORT, virtio_port="",
                    instance_dir=self.instance.dir if self.instance else "",
                    features=DriverFeatures(can_run_gui=self._can_run_gui(), rosetta_enabled=rosetta,
                                            rosetta_bin_fmt=self.options.rosetta_binfmt,
                                            supported_image_formats=list(SUPPORTED_IMAGE_FORMATS)))

    @hookimpl
    def configure(self, instance: Instance) -> None:
        if instance.config is None:
            raise ConfigError("the instance has no configuration")
        self.options = options.fill_defaults(instance.config, self.facts)
        self.instance = instance

    @hookimpl
    def validate(self) -> None:
        validation.validate(self._configured().config, self.facts)  # type: ignore[arg-type]

    @hookimpl
    def check_host(self) -> None:
        hostinfo.check(self.facts)
        entitlement.require(self._bindings())

    # -- Lifecycle ------------------------------------------------------------------------

    @hookimpl
    def create(self) -> None:
        try:
            vz = self._bindings().Virtualization
        except HostUnsupported:
            vz = None  # not on a Mac: write the identifier's representation directly
        identifier.ensure(self.dir, vz)

    @hookimpl
    def create_disk(self) -> None:
        cfg = self._configured().config
        assert cfg is not None
        disk.ensure_disk(self.dir, cfg.disk_bytes, self.options.disk_image_format)

    @hookimpl
    def start(self) -> StartHandle:
        if self.instance is not None and self._discard_saved():
            log.warning("discarded the saved state of %s: a boot makes it stale", self.instance.name)
        log.info("starting vz (to watch the boot, see %s)", self.dir / "serialv.log")
        return self._run(lambda machine: machine.start())

    def _run(self, bring_up: Callable[[Machine], None]) -> StartHandle:
        """Make the instance's VM and *bring_up* it (boot it, or restore it), then watch it and forward SSH."""
        from .framework.configuration import realize

        inst = self._configured()
        b = self._bindings()
        entitlement.require(b)
        inst_dir = self.dir
        if running.lookup(inst_dir) is not None:  # before claim_pid_file, which would drop its vz.pid
            raise StartFailed(f"the VM of {inst.name} is already running in this process")
        running.claim_pid_file(inst_dir)
        ident = identifier.ensure(inst_dir, b.Virtualization)
        spec = config.build(inst, self.facts, self.options)
        for directory in config.share_directories(spec):
            os.makedirs(directory, mode=0o750, exist_ok=True)
        locked: list[str] = []
        machine: Machine | None = None
        try:
            for name in datadisks.names(inst.config.additional_disks):  # type: ignore[union-attr]
                datadisks.lock(name, inst_dir)
                locked.append(name)
            for storage in spec.storage:
                if not storage.read_only:
                    disk.check_not_in_use(Path(storage.path))
            machine = Machine(b, realize(b, spec, ident), f"io.lima-vm.vz.{inst.name}")
            bring_up(machine)
        except BaseException:
            if machine is not None:
                with contextlib.suppress(DriverError):
                    if machine.state() != STOPPED:  # a restored VM that would not resume
                        machine.force_stop()
            for name in locked:
                datadisks.unlock(name, inst_dir)
            raise
        vm = running.RunningVM(inst.name, inst_dir, machine, StartHandle(), locked)
        vm.handle.on_cancel = lambda: _stop_in_background(vm)
        running.register(vm)
        self._forward_ssh(vm, spec.nics[0].mac_address)
        return vm.handle

    def _forward_ssh(self, vm: running.RunningVM, mac: str) -> None:
        inst = self._configured()
        port = inst.ssh_local_port
        if not port:
            log.warning("no SSH port was allocated for %s; SSH will not be forwarded", inst.name)
            vm.ssh_ready.set()
            return
        tcp = tcp_dialer(lambda: lease_ip(mac, self._leases), GUEST_SSH_PORT)
        over_vsock = bool(inst.config.ssh and inst.config.ssh.over_vsock)  # type: ignore[union-attr]

        def vsock() -> socket.socket:
            try:
                return vm.machine.connect_vsock(GUEST_SSH_PORT)
            except DriverError as exc:
                raise OSError(str(exc)) from exc

        dial = PreferFirst(vsock, tcp) if over_vsock else tcp
        try:
            vm.forwarder = Forwarder(port, dial, inst.ssh_address or "127.0.0.1")
        except OSError as exc:
            vm.handle.report(f"cannot forward SSH on port {port}: {exc.strerror or exc}")
        vm.ssh_ready.set()

    @hookimpl
    def additional_setup_for_ssh(self) -> None:
        vm = running.lookup(self.dir)
        if vm is not None and not vm.ssh_ready.wait(SSH_READY_TIMEOUT):
            raise DriverTimeout(f"SSH forwarding for {vm.name} was not ready within {SSH_READY_TIMEOUT:g} s")

    @hookimpl
    def stop(self) -> None:
        vm = running.lookup(self.dir)
        if vm is not None:
            _request_stop(vm)
            if not vm.stopped.wait(STOP_TIMEOUT):
                raise DriverTimeout("vz timeout while waiting for stop status")
            return
        _stop_other_process(self.dir)
        if self._discard_saved():
            log.info("discarded the saved state of %s (it was suspended)", self.dir.name)

    # -- suspend (lima-core's) --------------------------------------------------------------

    def _saved_paths(self) -> tuple[Path, Path]:
        return self.dir / filenames.VZ_SAVED_STATE, self.dir / filenames.VZ_SAVED_STATE_INFO

    def _discard_saved(self) -> bool:
        found = False
        state, info = self._saved_paths()
        for path in (info, state, state.with_name(state.name + ".tmp")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                found = True
        return found

    def _require_save_restore(self, what: str, error: type[Exception]) -> None:
        if not self.facts.macos_at_least(hostinfo.SAVE_RESTORE_MACOS):
            needed = ".".join(map(str, hostinfo.SAVE_RESTORE_MACOS[:1]))
            raise error(f"vz can {what} on macOS {needed} or later; this host runs {self.facts.describe()}")

    @hookimpl
    def suspend(self) -> int:
        self._require_save_restore("suspend a VM", DriverError)
        vm = running.lookup(self.dir)
        if vm is None:
            raise DriverError(f"cannot suspend: the VM of {self._configured().name} is not running in this process")
        vm.machine.validate_save_restore()
        state, info = self._saved_paths()
        tmp = state.with_name(state.name + ".tmp")
        vm.machine.pause()
        try:
            vm.machine.save_state(str(tmp))
            vm.machine.force_stop()
        except BaseException:
            tmp.unlink(missing_ok=True)
            with contextlib.suppress(DriverError):
                vm.machine.resume()  # the VM runs on, as it was
            raise
        if not vm.stopped.wait(STOP_TIMEOUT):
            raise DriverTimeout(f"the VM of {vm.name} did not stop within {STOP_TIMEOUT:g} s after its state was saved")
        os.replace(tmp, state)
        size = state.stat().st_size
        record = {"files": suspended.file_identity(self.dir, (filenames.DISK,)), "stateBytes": size,
                  "savedAt": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        atomicfile.write(info, json.dumps(record, indent=1) + "\n", mode=0o600, sync=True)
        return size

    @hookimpl
    def resume(self) -> StartHandle:
        self._require_save_restore("resume a VM", StartFailed)
        state, info = self._saved_paths()
        try:
            record = json.loads(info.read_text())
            files = {str(k): [int(x) for x in v] for k, v in record["files"].items()}
        except FileNotFoundError:
            raise StartFailed(f"instance {self._configured().name!r} has no saved state to resume ({info})") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StartFailed(f"the saved state's record {info} cannot be read ({exc})") from None
        if not state.exists():
            raise StartFailed(f"instance {self._configured().name!r} has no saved state to resume ({state})")
        changed = suspended.changed_files(files, self.dir)
        if changed:
            raise StartFailed(f"{' and '.join(changed)} changed since the VM was saved ({record.get('savedAt')}); "
                              "the saved memory no longer matches it, and resuming would corrupt it")

        def restore(machine: Machine) -> None:
            try:
                machine.restore_state(str(state))
                machine.resume()
            except DriverError as exc:
                raise StartFailed(str(exc)) from None

        log.info("resuming vz from %s", state)
        handle = self._run(restore)
        self._discard_saved()  # the VM runs from it: spent
        return handle

    @hookimpl
    def boot_scripts(self) -> dict[str, bytes]:
        return bootscripts.load(__package__)

    # -- GUI ------------------------------------------------------------------------------

    @hookimpl
    def run_gui(self) -> None:
        from .framework import gui

        if not self._can_run_gui():
            raise DriverError(f"RunGUI is not supported for the given driver 'vz' and display '{self._display()}'")
        vm = running.lookup(self.dir)
        if vm is None:
            raise DriverError(f"the vz VM of {self._configured().name} is not running in this process")
        gui.run_window(self._bindings(), vm.machine, f"Lima: {vm.name}", (config.GUI_WIDTH, config.GUI_HEIGHT),
                       lambda: not vm.stopped.is_set())

    @hookimpl
    def capture_screenshot(self, format: str) -> bytes:
        from .framework import gui

        if not self._can_run_gui():
            raise NoDisplay('the vz VM has no display (set video.display to "default" or "vz" to enable '
                            "screenshots)")
        vm = running.lookup(self.dir)
        return gui.capture(self._bindings(), vm.machine if vm else None, format)

    # -- guest agent ------------------------------------------------------------------------

    @hookimpl
    def forward_guest_agent(self) -> bool:
        return False

    @hookimpl
    def guest_agent_conn(self) -> Any:
        vm = running.lookup(self.dir)
        if vm is None:
            raise DriverError(f"unable to connect to guest agent via vsock port {VSOCK_PORT}: the VM of "
                              f"{self._configured().name} is not running in this process")
        return vm.machine.connect_vsock(VSOCK_PORT), "vsock"


def _request_stop(vm: running.RunningVM) -> None:
    if not vm.machine.can_request_stop():
        if vm.stopped.is_set():
            return
        raise DriverError(f"vz: CanRequestStop is not supported (the VM is {vm.machine.state_name()})")
    vm.machine.request_stop()


def _stop_in_background(vm: running.RunningVM) -> None:
    """The host went away without stop: ask the guest to power off and keep the process alive meanwhile.

    The thread is not a daemon, so a driver server that is shutting down waits
    (up to STOP_TIMEOUT) for the guest instead of killing it mid-write.
    """

    def stop() -> None:
        try:
            _request_stop(vm)
            vm.stopped.wait(STOP_TIMEOUT)
        except DriverError as exc:
            log.warning("could not stop the VM of %s: %s", vm.name, exc)

    threading.Thread(target=stop, name=f"vz-cancel-{vm.name}", daemon=False).start()


def _stop_other_process(instance_dir: Path) -> None:
    """SIGTERM the process named by vz.pid and wait for it to exit (see the module docstring)."""
    path = running.pid_path(instance_dir)
    status = pidfile.read(path)
    if status.process is None:
        if status.reason:
            raise DriverError(f"cannot stop the VM: {status.reason}")
        return  # nothing runs
    if status.pid == os.getpid():
        pidfile.remove(path)  # ours, but no VM is registered: stale
        return
    try:
        status.process.send_signal(signal.SIGTERM)
        status.process.wait(STOP_TIMEOUT)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        raise DriverTimeout("vz timeout while waiting for stop status") from None
    except psutil.AccessDenied as exc:
        raise DriverError(f"not allowed to signal process {status.pid}, which runs the VM") from exc
    deadline = time.monotonic() + STOP_POLL
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pidfile.remove(path)
