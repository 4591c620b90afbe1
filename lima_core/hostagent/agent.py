"""The host agent's work for one instance: configure the driver, build cidata, start the VM, watch it.

A suspended instance (see :mod:`lima_core.suspended`) is resumed instead: the
driver's ``resume`` replaces ``start``, cidata and the disk are left as they
are, and the guest's shares and clock are set up again once SSH answers.
While the VM runs, ``POST /v1/suspend`` on ``ha.sock`` (``lima suspend``)
saves it through the driver's ``suspend`` and ends the host agent without
stopping the VM (see :meth:`HostAgent.suspend`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .. import (
    cidata,
    containerd,
    disks,
    events,
    fields,
    filenames,
    instance,
    mounts,
    processes,
    sshutil,
    store,
    suspended,
)
from ..errors import DriverUnavailable, InstanceError, LimaError, UnsupportedOperation
from ..external import supervisor
from ..host import DriverHost
from ..limatype import Instance
from ..starthandle import StartHandle
from ..users import guest_user
from . import bootreport, copytohost, dns, guestsuspend, inotify, requirements, sshfs
from .infoserver import InfoServer

log = logging.getLogger("lima_core.hostagent")

#: Seconds between a stop asked during the start and the cancelling of the driver call in progress
#: (see :meth:`HostAgent._interrupt_boot`), and between two cancellings.
INTERRUPT_GRACE = 1.0


def free_port(port: int = 0) -> int:
    """*port* if it is free on 127.0.0.1 (0: any free port); 0 if it is taken."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return 0
        return s.getsockname()[1]


class _StopDuringBoot(KeyboardInterrupt):
    """Raised in the main thread by a stop request while the VM is being set up.

    A KeyboardInterrupt, so that an external driver call in progress is
    cancelled on its way out (see ``lima_core.external.client``).
    """


class HostAgent:
    def __init__(self, name: str, inst_dir: Path) -> None:
        self.name = name
        self.inst_dir = inst_dir
        #: a stop signal raises _StopDuringBoot in the main thread
        self.booting = False
        #: the start is over (booted or failed); the boot lock orders it with _interrupt_boot
        self._boot_over = False
        self._boot_lock = threading.Lock()
        self.stopping = threading.Event()
        self.stop_reason = ""
        self.errors: list[str] = []
        self.ssh_local_port = 0
        self.ssh_address = "127.0.0.1"
        self.host: DriverHost | None = None
        #: copyToHost files to remove when the host agent stops
        self.delete_on_stop: list[Path] = []
        #: the guest's DNS server (hostResolver), when this instance has one
        self.dns: dns.Server | None = None
        #: nerdctl-full for the guest, when lima.yaml asks for containerd and it could be had
        self.containerd_archive: Path | None = None
        self.inst: Instance | None = None
        #: port forwarding (lima_core.hostagent.portfwd), once SSH works
        self.portfwd: Any = None
        #: the reverse-sshfs mounts, once made
        self.sshfs: sshfs.Mounts | None = None
        #: mountInotify's watcher, once started
        self.inotify: inotify.MountInotify | None = None
        self._emit_lock = threading.Lock()
        #: the suspend record when this host agent resumes the VM instead of booting it
        self.record: suspended.Record | None = None
        self.instance_id = ""
        self.handle: StartHandle | None = None
        #: the guest passed its requirements (a suspend before then is refused)
        self.ready = False
        #: held while a suspend runs; ``suspended`` once the VM's state is saved and the VM has ended
        self._suspend_lock = threading.Lock()
        self.suspended = False
        #: set once ``lima suspend`` has its answer: the host agent may exit then
        self._suspend_answered = threading.Event()

    def emit(self, **fields: Any) -> None:
        with self._emit_lock:
            events.emit(sys.stdout, events.Event(**fields))

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.stopping.set()

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.request_stop(signal.Signals(signum).name)
        if self.booting:
            self._check_stop()

    def _check_stop(self) -> None:
        """Between two steps of the start, and from the stop signal's handler: a stop asked ends the start
        here, also when the signal's exception was lost (Python drops one raised while a finalizer,
        ``__del__``, runs). Disarms the handler, so the exception is raised once."""
        if self.stopping.is_set():
            self.booting = False
            raise _StopDuringBoot(self.stop_reason)

    def _interrupt_boot(self) -> None:
        """While the start runs: once a stop is asked, cancel the driver call in progress every
        :data:`INTERRUPT_GRACE` seconds until the start is over. The signal's exception usually ends
        the call first; this ends an external driver's call whatever happened to that exception (an
        in-process hook runs until it returns, and the next step's check ends the start).
        """
        while True:
            if self.stopping.wait(INTERRUPT_GRACE):
                time.sleep(INTERRUPT_GRACE)
            with self._boot_lock:
                if self._boot_over:
                    return
                if self.stopping.is_set() and self.host is not None:
                    self.host.interrupt()

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.booting = True
            threading.Thread(target=self._interrupt_boot, name="stop-during-boot", daemon=True).start()
            try:
                self._check_stop()  # asked to stop before it began
                handle = self._boot()
            finally:
                self.booting = False
                with self._boot_lock:
                    self._boot_over = True
        except (_StopDuringBoot, LimaError) as exc:
            if self.stopping.is_set():  # also a driver call that _interrupt_boot cancelled
                log.warning("asked to stop (%s) while starting; stopping the VM", self.stop_reason)
                self.emit(exiting=True, errors=[f"stopped ({self.stop_reason}) while starting"])
            else:
                assert isinstance(exc, LimaError)
                log.error("%s failed: %s", "resume" if self.record else "start", exc.message)
                self.emit(exiting=True, errors=[exc.message])
            self._shutdown(started=self._vm_may_run())
            return 1
        except Exception as exc:  # noqa: BLE001 - reported as an event, then re-raised into the log
            log.exception("start failed")
            self.emit(exiting=True, errors=[f"{type(exc).__name__}: {exc}"])
            self._shutdown(started=self._vm_may_run())
            return 1
        threading.Thread(target=self._wait_ready, name="requirements", daemon=True).start()
        info = self.host.info() if self.host else None
        if info is not None and info.features.can_run_gui:
            waiter = threading.Thread(target=self._wait_end, args=(handle,), daemon=True)
            waiter.start()
            try:
                self.host.run_gui()  # type: ignore[union-attr]
            except LimaError as exc:
                self.errors.append(f"GUI: {exc.message}")
            waiter.join()
        else:
            self._wait_end(handle)
        with self._suspend_lock:  # a suspend in progress finishes first
            saved = self.suspended
        if saved:
            self._suspend_answered.wait(10)
        self.emit(exiting=True, errors=self.errors, message="The VM is suspended" if saved else "")
        self._shutdown(started=not saved)
        return 0 if not self.errors else 1

    def _vm_may_run(self) -> bool:
        """Whether a failed start may have left a VM to stop. A failed resume leaves none (the driver's
        contract), and ``stop`` would discard the saved state the user may still resume."""
        return self.host is not None and (self.record is None or self.handle is not None)

    def _boot(self) -> StartHandle:
        inst = self.inst = store.inspect(self.name, driver_status=False)
        assert inst.config is not None and inst.config.ssh is not None
        record = self.record = suspended.read(self.inst_dir)
        configured = inst.config.ssh.local_port or 0
        # A resumed VM keeps its SSH port when it is still free: ssh.config and the user's habits stay valid.
        port = configured if configured > 0 else (record and free_port(record.ssh_local_port)) or free_port()
        self.host = instance.load_driver(inst, ssh_local_port=port)
        self._check_stop()
        if record is None:
            # `lima start` leaves these to the host agent when the instance has its disk; all are idempotent.
            # A resume skips them: the disk must stay as it was saved.
            self.host.validate()
            self.host.create()
            self.host.create_disk()
            self._check_stop()
        self.ssh_local_port = inst.ssh_local_port or port
        info = self.host.info()
        if record is None:
            for warning in fields.enforce(inst.config, self.host.name, "lima.yaml", warn=False,
                                          no_cloud_init=info.features.no_cloud_init):
                log.warning("%s", warning)
                self.emit(message=f"WARNING: {warning}")
        user = guest_user(inst.config)
        self.ssh_address = inst.ssh_address or inst.config.ssh.address or "127.0.0.1"
        self._write_ssh_config(inst, user.name)
        dns_ports = (0, 0)
        if cidata.host_resolver_applies(inst.config):
            resolver = inst.config.host_resolver
            assert resolver is not None
            # A resumed guest's DNS redirect points at the ports of its boot: serve on those again.
            ports = tuple(record.dns_ports) if record is not None and len(record.dns_ports) == 2 else (0, 0)
            self.dns = dns.Server(dns.Names(self.name, resolver.hosts, bool(resolver.ipv6)), *ports)
            dns_ports = (self.dns.udp_port, self.dns.tcp_port)
        if record is not None:
            handle = self._resume(record)
        else:
            if containerd.wanted(inst.config):
                try:  # `lima start` fetched it into the download cache
                    self.containerd_archive = containerd.archive(inst.config, offline=True)
                except LimaError as exc:
                    log.warning("%s", containerd.unavailable_message(inst.config, exc.message))
            self.cidata = cidata.generate(inst, info, self.host.boot_scripts(), user,
                                          sshutil.public_keys(inst.config), dns_ports=dns_ports,
                                          containerd_archive=self.containerd_archive)
            self.instance_id = self.cidata.instance_id
            self.emit(ssh_local_port=self.ssh_local_port, message="Booting the VM")
            log.info("starting the VM (driver %s)", self.host.name)
            self._check_stop()
            handle = self.handle = self.host.start()
        if self.dns is not None:
            self.dns.start()
        InfoServer.serve(self.inst_dir / filenames.HOST_AGENT_SOCK, self)  # after: the VM need not wait for it
        self._check_stop()
        self.host.additional_setup_for_ssh()
        if info.features.dynamic_ssh_address:
            self.ssh_address = self.host.ssh_address()
            self._write_ssh_config(inst, user.name)
        if inst.config.video is not None and inst.config.video.display == "vnc":
            self._setup_vnc()
        return handle

    def _resume(self, record: suspended.Record) -> StartHandle:
        """The driver's ``resume`` in place of ``start``; the record goes once the VM runs from the state."""
        assert self.host is not None
        if record.driver and record.driver != self.host.name:
            raise InstanceError(f"the saved state was made by the {record.driver} driver, not {self.host.name}")
        if record.lima_yaml_sha256 and record.lima_yaml_sha256 != suspended.lima_yaml_digest(self.inst_dir):
            warning = ("lima.yaml changed while the instance was suspended; the resumed VM is the one that was "
                       "saved, and the changes apply from its next boot")
            log.warning("%s", warning)
            self.emit(message=f"WARNING: {warning}")
        self.instance_id = record.instance_id
        self.emit(ssh_local_port=self.ssh_local_port, message="Resuming the VM from its saved state")
        log.info("resuming the VM (driver %s) from the state saved at %s", self.host.name, record.time)
        self._check_stop()
        handle = self.handle = self.host.resume()
        suspended.remove(self.inst_dir)
        return handle

    def suspend(self) -> dict[str, Any]:
        """Save the VM through the driver, so that this host agent ends without stopping it (``POST /v1/suspend``).

        The guest is synced and its device-backed shares unmounted first; if
        the driver cannot save the VM, they are mounted again and the VM runs
        on. Runs in the thread of the request, which calls
        :meth:`suspend_answered` once it has answered; the main thread's stop
        waits for both. :raises LimaError: why the VM could not be suspended.
        """
        with self._suspend_lock:
            host, inst = self.host, self.inst
            if self.suspended:
                raise InstanceError(f"instance {self.name!r} is being suspended already")
            if self.stopping.is_set() or host is None or inst is None:
                raise InstanceError(f"instance {self.name!r} is stopping")
            if not self.ready:
                raise InstanceError(f"instance {self.name!r} is still starting; suspend it once `lima start` "
                                    "has said READY")
            if not host.implements("suspend"):
                host.suspend()  # the contract's answer: "driver 'x' does not support suspend"
            if not host.implements("resume"):
                raise UnsupportedOperation(f"driver {host.name!r} does not support suspend: it can save a VM but "
                                           "not resume one")
            started = time.monotonic()
            self.emit(message="Suspending the VM")
            rows = guestsuspend.share_rows(inst, host.info())
            unmounted = guestsuspend.before_suspend(self.inst_dir, self.name, rows) if rows else []
            log.info("saving the VM's state (driver %s)%s", host.name,
                     f"; unmounted {', '.join(r[1] for r in unmounted)} in the guest" if unmounted else "")
            try:
                size = host.suspend()
            except LimaError:
                if unmounted:
                    again = guestsuspend.after_resume(self.inst_dir, self.name, unmounted, set_clock=False)
                    for error in again.errors:
                        log.error("%s", error)
                raise
            record = suspended.Record(
                driver=host.name, time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                instance_id=self.instance_id, ssh_local_port=self.ssh_local_port, shares=unmounted,
                state_bytes=size, milliseconds=round((time.monotonic() - started) * 1000),
                lima_yaml_sha256=suspended.lima_yaml_digest(self.inst_dir),
                dns_ports=[self.dns.udp_port, self.dns.tcp_port] if self.dns is not None else [])
            suspended.write(self.inst_dir, record)
            self.suspended = True
            log.info("the VM is suspended (%d bytes of state, %d ms)", size, record.milliseconds)
            return {"stateBytes": size, "milliseconds": record.milliseconds}

    def suspend_answered(self) -> None:
        """The request for :meth:`suspend` has its answer: after a suspend, the host agent now exits."""
        if self.suspended:
            self._suspend_answered.set()
            self.request_stop("suspended")

    def _write_ssh_config(self, inst: Instance, user: str) -> None:
        ssh = inst.config.ssh if inst.config is not None else None
        sshutil.write_config(self.inst_dir, self.name, user, self.ssh_local_port, self.ssh_address,
                             forward_agent=bool(ssh and ssh.forward_agent), forward_x11=bool(ssh and ssh.forward_x11),
                             forward_x11_trusted=bool(ssh and ssh.forward_x11_trusted))

    def _setup_vnc(self) -> None:
        import secrets  # here: only a VNC display needs it, and every host agent would pay for it at start
        import string

        assert self.host is not None
        password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))
        self.host.change_display_password(password=password)
        path = self.inst_dir / filenames.VNC_PASSWORD
        path.write_text(password)
        os.chmod(path, 0o600)
        port = int(self.host.display_connection())
        (self.inst_dir / filenames.VNC_DISPLAY).write_text(f"127.0.0.1:{port - 5900}")
        log.info("VNC display: vnc://127.0.0.1:%d (password in %s)", port, path)

    def _wait_end(self, handle: StartHandle) -> None:
        """Until a signal, or the first event on the start handle (Lima: "driver stopped")."""
        while not self.stopping.is_set():
            event = handle.next(timeout=0.2)
            if event is None:
                continue
            with self._suspend_lock:  # the VM ends when a suspend saved it: wait for its outcome
                if self.suspended:
                    log.info("the VM's state is saved and the VM has ended")
                    return
            if event.ended:
                log.info("the VM has ended")
                self.errors.append("the VM stopped by itself")
            else:
                log.error("driver reported: %s", event.error)
                self.errors.append(event.error or "the driver stopped")
            self.stopping.set()
            return
        log.info("stopping on %s", self.stop_reason)

    def _say(self, message: str = "", **fields: Any) -> None:
        self.emit(message=message, **fields)

    def _wait_ready(self) -> None:
        """Lima's requirements (essential, optional, final), then what failed in the guest's boot, then
        copyToHost; the ``running`` event says whether all went well (``degraded`` and the errors if not)."""
        try:
            self._check_guest()
        except Exception as exc:  # noqa: BLE001 - `lima start` must hear of it, not wait for its timeout
            log.exception("checking the guest failed")
            self.emit(running=True, degraded=True, errors=[f"lima-core failed to check the guest: "
                                                          f"{type(exc).__name__}: {exc}"])

    def _check_guest(self) -> None:
        inst = self.inst
        assert inst is not None and inst.config is not None
        iid = self.instance_id
        user = guest_user(inst.config)
        runner = requirements.Runner(self.inst_dir, self.name, self.ssh_address, self.ssh_local_port,
                                     self.stopping.is_set, self._say)
        essential = requirements.essential(inst, iid)
        if self.record is not None:
            # A boot keeps the ControlMaster out until the user session is ready (cloud-init may restart
            # sshd meanwhile); a resumed guest's SSH server runs as it was, so the first check starts the
            # master and the others go through it: one SSH handshake instead of three.
            essential = [dataclasses.replace(req, no_master=False) for req in essential]
        errors = runner.run_group("essential", essential)
        if not errors and self.record is not None and not self.stopping.is_set():
            errors += self._revive_guest(self.record)
        forwarding_errors = self._start_port_forwarding(inst, user) if not errors and not self.stopping.is_set() \
            else []
        if not errors:
            errors += self._mount_reverse_sshfs(inst)
            errors += self._start_mount_inotify(inst)
            errors += runner.run_group("optional", requirements.optional(
                inst, user, containerd=self.containerd_archive is not None))
            final = runner.run_group("final", requirements.final(iid))
            errors += final
            # The boot scripts have started the guest agent by now (when the guest can run it).
            if not final and self.portfwd is not None and not self.stopping.is_set() \
                    and not self.portfwd.wait_agent():
                errors.append(self.portfwd.no_agent_error())
            # A resumed guest's boot was checked when it booted: its report would say the same again.
            if not final and not self.stopping.is_set() and self.record is None:
                failures, warnings = bootreport.collect(self.inst_dir, self.name, inst.config)
                for warning in warnings:
                    log.warning("%s", warning)
                    self._say(f"WARNING: {warning}")
                errors += failures
            if not self.stopping.is_set():
                copy_errors, self.delete_on_stop = copytohost.copy_all(inst, user)
                errors += copy_errors
        errors += forwarding_errors
        if self.stopping.is_set():
            return
        if errors:
            log.warning("the instance is running, degraded: %s", "; ".join(errors))
        else:
            log.info("the guest is ready")
        self.ready = True
        self.emit(running=True, degraded=bool(errors), errors=errors, ssh_local_port=self.ssh_local_port,
                  message="" if errors else "The guest is ready")

    def _start_port_forwarding(self, inst: Instance, user: Any) -> list[str]:
        """Start forwarding lima.yaml's portForwards and Lima's defaults (after SSH works, as Lima)."""
        from . import portfwd, portrules  # here: asyncio and the rest are not needed to boot the VM

        assert inst.config is not None and self.host is not None
        try:
            rules = portrules.resolve(inst.config, self.ssh_local_port, self.inst_dir,
                                      cidata.guest_template_values(inst, user), copytohost.host_template_values(inst))
        except LimaError as exc:
            return [f"port forwarding: {exc.message}"]
        info = self.host.info()
        self.portfwd = portfwd.PortForwarding(
            inst_dir=self.inst_dir, name=self.name, driver=self.host, rules=rules, plain=bool(inst.config.plain),
            skip_sockets=info.features.skip_socket_forwarding,
            little_endian=portfwd.default_little_endian(inst.config.arch or ""), emit=self.emit)
        self.portfwd.start()
        return []

    def port_forwards(self) -> dict[str, Any]:
        """The current forwards (``GET /v1/port-forwards`` on ha.sock)."""
        if self.portfwd is None:
            return {"guestAgent": {"state": "starting"}, "portForwards": []}
        return self.portfwd.status()

    def _mount_reverse_sshfs(self, inst: Instance) -> list[str]:
        """Lima's step after the essential requirements: the reverse-sshfs mounts (see :mod:`.sshfs`)."""
        if not requirements.reverse_sshfs(inst) or self.stopping.is_set():
            return []
        shared = mounts.resolve(inst.config)  # type: ignore[arg-type]
        self.sshfs = sshfs.Mounts(self.inst_dir, self.name, shared)
        for m in shared:
            self._say(f"Mounting {m.location} on {m.mount_point} (reverse-sshfs)")
        return self.sshfs.mount_all()

    def _start_mount_inotify(self, inst: Instance) -> list[str]:
        """mountInotify: host-side changes of the writable mounts replayed in the guest (see :mod:`.inotify`)."""
        cfg = inst.config
        assert cfg is not None
        if not cfg.mount_inotify or cfg.plain or self.stopping.is_set():
            return []
        writable = [m for m in mounts.resolve(cfg) if m.writable]
        if not writable:
            return []
        try:
            self.inotify = inotify.MountInotify(self.inst_dir, self.name, writable)
        except OSError as exc:
            return [f"mountInotify: cannot watch the host's directories: {exc.strerror or exc}"]
        return []

    def _revive_guest(self, record: suspended.Record) -> list[str]:
        """After a resume: the guest's clock, and the shares unmounted for the suspend; the errors."""
        revived = guestsuspend.after_resume(self.inst_dir, self.name, record.shares)
        for note in revived.notes:
            log.info("%s", note)
        for warning in revived.warnings:
            log.warning("%s", warning)
            self._say(f"WARNING: {warning}")
        return revived.errors

    def _shutdown(self, started: bool) -> None:
        """Stop the VM if *started*, then end what the host agent holds (after a suspend: only that)."""
        if self.portfwd is not None:
            self.portfwd.stop()
        if self.inotify is not None:
            self.inotify.close()
        if self.sshfs is not None:
            self.sshfs.close()
        host = self.host
        if self.record is not None and self.handle is not None and not self.suspended:
            suspended.remove(self.inst_dir)  # the VM ran from the saved state: that record is spent
        problems: list[str] = []
        if host is not None and started:
            try:
                host.stop()
            except DriverUnavailable as exc:
                log.warning("driver unreachable (%s); stopping the VM through a new driver process", exc.message)
                try:
                    supervisor.stop_servers(self.inst_dir, force=True)
                    inst = store.inspect(self.name, driver_status=False)
                    fresh = instance.load_driver(inst, ssh_local_port=self.ssh_local_port)
                    try:
                        fresh.stop()
                    finally:
                        fresh.close()
                    problems.append(f"{exc.message}; stopped the VM through a new driver process")
                except LimaError as again:
                    log.error("the new driver process could not stop the VM either: %s", again.message)
                    problems.append(f"{exc.message}; a new driver process could not stop the VM either "
                                    f"({again.message}), so it was killed")
                    self._kill_vm()
            except LimaError as exc:
                log.error("stop failed: %s", exc.message)
                problems.append(f"stop failed: {exc.message}; the VM was killed")
                self._kill_vm()
        if problems:  # after the first `exiting` event: `lima stop` reports the last one
            self.emit(exiting=True, errors=self.errors + problems)
        if host is not None:
            host.close()
        sshutil.stop_master(self.inst_dir, self.name)
        if self.dns is not None:
            self.dns.close()
        self._unlock_disks()
        for path in self.delete_on_stop:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                log.info("copyToHost: removed %s (deleteOnStop)", path)
        log.info("the VM is stopped; stopping external driver processes")
        with contextlib.suppress(Exception):
            supervisor.stop_servers(self.inst_dir, force=False)
        log.info("host agent exiting")
        for f in (filenames.HOST_AGENT_SOCK,):
            with contextlib.suppress(FileNotFoundError):
                (self.inst_dir / f).unlink()

    def _unlock_disks(self) -> None:
        """Release the additional disks the driver locked, once the VM that used them is gone."""
        vm_type = self.inst.vm_type if self.inst is not None else ""
        if vm_type and store.vm_process(self.inst_dir, vm_type).alive:
            log.warning("the VM still runs: its additional disks stay locked (`lima stop -f %s` unlocks them)",
                        self.name)
            return
        for name in disks.unlock_all(self.inst_dir):
            log.info("unlocked additional disk %r", name)

    def _kill_vm(self) -> None:
        """Last resort when the driver cannot stop the VM: kill the process ``<vmType>.pid`` names, as
        ``lima stop -f`` would, so the VM is not orphaned (Lima leaves it running: Broken)."""
        vm_type = self.inst.vm_type if self.inst is not None else ""
        status = store.vm_process(self.inst_dir, vm_type) if vm_type else None
        if status is None or status.process is None or status.pid == os.getpid():
            return
        log.warning("killing the VM process (pid %d) that the driver could not stop", status.pid)
        with contextlib.suppress(Exception):
            processes.kill(status.process)
