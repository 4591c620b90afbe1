"""The host agent's work for one instance: configure the driver, build cidata, start the VM, watch it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from .. import cidata, events, fields, filenames, instance, mounts, processes, sshutil, store
from ..errors import DriverUnavailable, LimaError
from ..external import supervisor
from ..host import DriverHost
from ..limatype import Instance
from ..starthandle import StartHandle
from ..users import guest_user
from . import bootreport, copytohost, dns, inotify, requirements, sshfs
from .infoserver import InfoServer

log = logging.getLogger("lima_core.hostagent")



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
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
        self.booting = False
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
        self.inst: Instance | None = None
        #: the reverse-sshfs mounts, once made
        self.sshfs: sshfs.Mounts | None = None
        #: mountInotify's watcher, once started
        self.inotify: inotify.MountInotify | None = None
        self._emit_lock = threading.Lock()

    def emit(self, **fields: Any) -> None:
        with self._emit_lock:
            events.emit(sys.stdout, events.Event(**fields))

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.stopping.set()

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.request_stop(signal.Signals(signum).name)
        if self.booting:
            self.booting = False
            raise _StopDuringBoot(self.stop_reason)

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.booting = True
            try:
                handle = self._boot()
            finally:
                self.booting = False
        except _StopDuringBoot:
            log.warning("asked to stop (%s) while starting; stopping the VM", self.stop_reason)
            self.emit(exiting=True, errors=[f"stopped ({self.stop_reason}) while starting"])
            self._shutdown(started=self.host is not None)
            return 1
        except LimaError as exc:
            log.error("start failed: %s", exc.message)
            self.emit(exiting=True, errors=[exc.message])
            self._shutdown(started=self.host is not None)
            return 1
        except Exception as exc:  # noqa: BLE001 - reported as an event, then re-raised into the log
            log.exception("start failed")
            self.emit(exiting=True, errors=[f"{type(exc).__name__}: {exc}"])
            self._shutdown(started=self.host is not None)
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
        self.emit(exiting=True, errors=self.errors)
        self._shutdown(started=True)
        return 0 if not self.errors else 1

    def _boot(self) -> StartHandle:
        inst = self.inst = store.inspect(self.name, driver_status=False)
        assert inst.config is not None and inst.config.ssh is not None
        configured = inst.config.ssh.local_port or 0
        port = configured if configured > 0 else free_port()
        self.host = instance.load_driver(inst, ssh_local_port=port)
        # `lima start` leaves these to the host agent when the instance has its disk; all are idempotent.
        self.host.validate()
        self.host.create()
        self.host.create_disk()
        self.ssh_local_port = inst.ssh_local_port or port
        info = self.host.info()
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
            self.dns = dns.Server(dns.Names(self.name, resolver.hosts, bool(resolver.ipv6)))
            dns_ports = (self.dns.udp_port, self.dns.tcp_port)
        self.cidata = cidata.generate(inst, info, self.host.boot_scripts(), user, sshutil.public_keys(inst.config),
                                      dns_ports=dns_ports)
        self.emit(ssh_local_port=self.ssh_local_port, message="Booting the VM")
        log.info("starting the VM (driver %s)", self.host.name)
        handle = self.host.start()
        if self.dns is not None:
            self.dns.start()
        InfoServer.serve(self.inst_dir / filenames.HOST_AGENT_SOCK, self)  # after: the VM need not wait for it
        self.host.additional_setup_for_ssh()
        if info.features.dynamic_ssh_address:
            self.ssh_address = self.host.ssh_address()
            self._write_ssh_config(inst, user.name)
        if inst.config.video is not None and inst.config.video.display == "vnc":
            self._setup_vnc()
        return handle

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
        iid = self.cidata.instance_id
        user = guest_user(inst.config)
        runner = requirements.Runner(self.inst_dir, self.name, self.ssh_address, self.ssh_local_port,
                                     self.stopping.is_set, self._say)
        errors = runner.run_group("essential", requirements.essential(inst, iid))
        if not errors:
            errors += self._mount_reverse_sshfs(inst)
            errors += self._start_mount_inotify(inst)
            errors += runner.run_group("optional", requirements.optional(inst, user))
            final = runner.run_group("final", requirements.final(iid))
            errors += final
            if not final and not self.stopping.is_set():
                failures, warnings = bootreport.collect(self.inst_dir, self.name, inst.config)
                for warning in warnings:
                    log.warning("%s", warning)
                    self._say(f"WARNING: {warning}")
                errors += failures
            if not self.stopping.is_set():
                copy_errors, self.delete_on_stop = copytohost.copy_all(inst, user)
                errors += copy_errors
        if self.stopping.is_set():
            return
        if errors:
            log.warning("the instance is running, degraded: %s", "; ".join(errors))
        else:
            log.info("the guest is ready")
        self.emit(running=True, degraded=bool(errors), errors=errors, ssh_local_port=self.ssh_local_port,
                  message="" if errors else "The guest is ready")

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

    def _shutdown(self, started: bool) -> None:
        if self.inotify is not None:
            self.inotify.close()
        if self.sshfs is not None:
            self.sshfs.close()
        host = self.host
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
                except LimaError as again:
                    log.error("the new driver process could not stop the VM either: %s", again.message)
                    self._kill_vm()
            except LimaError as exc:
                log.error("stop failed: %s", exc.message)
                self._kill_vm()
        if host is not None:
            host.close()
        sshutil.stop_master(self.inst_dir, self.name)
        if self.dns is not None:
            self.dns.close()
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
