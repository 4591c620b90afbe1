"""QemuDriver: every hook of the driver contract, as Lima's qemu driver does it (reference §4).

State lives in the instance directory (``qemu.pid``, ``qmp.sock``), so every
hook but ``start`` works from any process: a CLI's forced stop, a restarted
host agent, another session of the same external driver server. ``start``
also keeps its ``Popen`` so the returned handle reports qemu's exit.

What starts QEMU (finding the binary and its features, the accelerator, the
firmware, the command line) is imported by the hooks that need it: a driver
process that answers ``info`` or serves a running VM's ``stop`` never loads it.

``suspend`` and ``resume`` (lima-core's) save the running VM as a migration
stream in the instance directory and start QEMU from it again; see
:mod:`.savedstate` for how, and why not ``savevm``. While an instance is
suspended its disk must not change: snapshot commands are refused, and
``stop`` (no QEMU runs) discards the saved state, as does a cold ``start``.

The guest agent is reached through a virtio-serial port, as Lima's qemu
driver does on Windows hosts (here on every host): ``info`` names the port,
so ``forward_guest_agent`` defaults to false, and ``guest_agent_conn`` dials
QEMU's end of it, ``ga.sock``.


Hooks whose host default is what Lima's qemu driver does are not implemented,
so an external driver is not asked for them: ``create`` and ``delete``
(nothing outside the instance directory), ``boot_scripts`` (none),
``forward_guest_agent`` (false: there is a virtio port), ``ssh_address``
(127.0.0.1) and ``additional_setup_for_ssh`` (nothing to wait for).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lima_core import disks, filenames, hookimpl, pidfile, processes, textfile
from lima_core.errors import ConfigError, DriverError, HostUnsupported, LimaError, StartFailed, ValidationError
from lima_core.guestagent import VIRTIO_PORT
from lima_core.limatype import (
    DEFAULT_DISK,
    STATUS_BROKEN,
    STATUS_RUNNING,
    DriverFeatures,
    Info,
    Instance,
    LimaYAML,
    host_arch,
)
from lima_core.network import mac_address
from lima_core.starthandle import StartHandle
from lima_core.units import parse_size

from . import config, disk, process, qmp, runstate, savedstate

if TYPE_CHECKING:
    import psutil  # imported where used: the driver process starts faster without it
    from lima_core.mounts import ResolvedMount

    from . import accel, binary, cmdline

log = logging.getLogger(__name__)

NAME = config.NAME
#: qemu's stdout and stderr (Lima logs them through the host agent as qemu[stdout]/qemu[stderr])
QEMU_LOG = "qemu.stderr.log"
#: Lima's shutdownQEMU timeout: power button, then SIGKILL after this long
STOP_TIMEOUT = 180.0
#: press the power button again this often while waiting (a guest still booting misses the first press)
POWERDOWN_INTERVAL = 5.0
#: how long qemu gets to answer on its QMP socket before start gives up
STARTUP_TIMEOUT = 15.0
#: Lima waits this long for qmp.sock before setting the VNC password
VNC_SOCKET_WAIT = 30.0
SUPPORTED_IMAGE_FORMATS = list(disk.KEPT_FORMATS)
DEFAULT_SSH_ADDRESS = "127.0.0.1"
#: snapshot operation -> (its HMP command while running, whether the tag must exist)
_SNAPSHOT_OPS = {"create": ("savevm", False), "apply": ("loadvm", True), "delete": ("delvm", True)}


@dataclasses.dataclass(frozen=True)
class _Qemu:
    """The binary and how it will run this instance."""

    exe: str
    extra_args: tuple[str, ...]
    version: tuple[int, int, int]
    features: binary.Features
    accel: accel.Choice
    cpu: str


class QemuDriver:
    """Lima's qemu driver. ``stop_timeout`` is Lima's 3 minutes unless given."""

    name = NAME

    def __init__(self, stop_timeout: float = STOP_TIMEOUT, powerdown_interval: float = POWERDOWN_INTERVAL) -> None:
        self.instance: Instance | None = None
        self.stop_timeout = stop_timeout
        self.powerdown_interval = powerdown_interval
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    # -- helpers --------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        if self.instance is None:
            raise DriverError(f"driver {self.name!r} was not configured")
        return Path(self.instance.dir)

    @property
    def config(self) -> LimaYAML:
        if self.instance is None or self.instance.config is None:
            raise DriverError(f"driver {self.name!r} was not configured")
        return self.instance.config

    @property
    def arch(self) -> str:
        return self.config.arch or host_arch()

    @property
    def _qmp_sock(self) -> Path:
        return self.dir / filenames.QMP_SOCK

    def _disk(self) -> Path:
        return self.dir / filenames.DISK

    def _qemu(self) -> _Qemu:
        """Find the binary, check its version and features, choose the accelerator and CPU."""
        from . import accel, binary

        cfg, arch = self.config, self.arch
        exe, extra = binary.find_executable(arch)
        try:
            version = binary.version(exe)
        except (ValueError, OSError, subprocess.SubprocessError) as exc:
            log.warning("failed to detect the QEMU version: %s", exc)
            version = (0, 0, 0)
        else:
            minimum = config.qemu_opts(cfg).get("minimumVersion")
            for warning in binary.check_version(version, str(minimum) if minimum else None):
                log.warning("%s", warning)
        features = binary.features(exe, binary.machine_for(arch))
        native = accel.native_accel(arch)
        choice = accel.choose(arch, exe, config.cpu_type(cfg, arch, native), features)
        cpu = config.cpu_type(cfg, arch, choice.accel)
        if not features.has_cpu(cpu):
            raise ValidationError(f"cpu {cpu!r} is not supported by {exe}")
        return _Qemu(exe, tuple(extra), version, features, choice, cpu)

    def _running_qemu(self) -> psutil.Process | None:
        import psutil

        found = process.find(self.dir)
        if found is None and self._proc is not None and self._proc.poll() is None:
            try:  # started here, but no pid file (yet)
                found = psutil.Process(self._proc.pid)
            except psutil.NoSuchProcess:
                found = None
        return found

    # -- Info and Configure ---------------------------------------------------------------

    @hookimpl
    def info(self) -> Info:
        inst = self.instance
        return Info(name=self.name, vsock_port=0, virtio_port=VIRTIO_PORT, instance_dir=inst.dir if inst else "",
                    features=DriverFeatures(supported_image_formats=list(SUPPORTED_IMAGE_FORMATS)))

    @hookimpl
    def configure(self, instance: Instance) -> None:
        if instance.config is None:
            raise ConfigError("the instance has no configuration")
        config.fill_defaults(instance.config, Path(instance.dir))
        config.check(instance.config)
        self.instance = instance

    @hookimpl
    def check_host(self) -> None:
        from . import binary

        try:
            binary.find_executable(host_arch())
        except ValidationError as exc:
            raise HostUnsupported(str(exc)) from None

    @hookimpl
    def validate(self) -> None:
        from . import firmware

        cfg = self.config
        try:
            config.check(cfg)
        except ConfigError as exc:
            raise ValidationError(str(exc)) from None
        missing = config.unsupported_features(cfg)
        if missing:
            raise ValidationError(f"lima-driver-qemu does not support {', '.join(missing)} yet")
        for i, entry in enumerate(cfg.additional_disks or []):
            name = entry.get("name") if isinstance(entry, dict) else entry
            try:
                disks.inspect(str(name))
            except disks.DiskError as exc:
                raise ValidationError(f"additionalDisks[{i}]: {exc.message}") from None
        for i, nw in enumerate(cfg.networks or []):
            if nw.vz_nat:
                log.warning("networks[%d]: vzNAT is ignored by the qemu driver", i)
        if cfg.ssh and cfg.ssh.over_vsock:
            log.warning("ssh.overVsock is not implemented for qemu; SSH goes through the forwarded port")
        qemu = self._qemu()
        try:
            firmware.find(cfg, self.arch, qemu.exe, self.dir, copy=False)
        except ConfigError as exc:
            raise ValidationError(str(exc)) from None
        if cfg.mount_type == "virtiofs" and cfg.mounts and not cfg.plain:
            from . import virtiofsd

            virtiofsd.find(qemu.exe)

    # -- Lifecycle ------------------------------------------------------------------------

    @hookimpl
    def create_disk(self) -> None:
        size = self._disk_size()
        disk.ensure_disk(self.dir, size)
        disk.ensure_size(self._disk(), size)

    def _disk_size(self) -> int:
        return parse_size(self.config.disk or DEFAULT_DISK, "disk")

    @hookimpl
    def start(self) -> StartHandle:
        with self._lock:
            try:
                proc = self._launch()
            except StartFailed:
                raise
            except LimaError as exc:
                raise StartFailed(exc.message) from exc
            self._proc = proc
        return StartHandle.for_process(proc, "qemu", on_cancel=lambda: processes.kill(proc))

    def _launch(self) -> subprocess.Popen:
        from . import cmdline

        inst = self.instance
        assert inst is not None
        self._refuse_running()
        if not self._disk().exists():
            raise StartFailed(f"instance {inst.name!r} has no disk ({self._disk()}); create_disk makes it")
        if savedstate.discard(self.dir):
            log.warning("discarded the saved state of %s: a boot makes it stale", inst.name)
        disk.ensure_size(self._disk(), self._disk_size())
        qemu = self._qemu()
        if qemu.accel.reason:
            log.warning("starting %s under TCG: %s", inst.name, qemu.accel.reason)
        # Lima's item 6: each additional disk locked to this instance (DiskError if another holds it)
        extra = disks.attach(list(self.config.additional_disks or []), self.dir)
        try:
            spec = self._spec(qemu, tuple(map(str, extra)))
            self._start_virtiofsd(qemu, spec)
            return self._spawn(qemu.exe, cmdline.build(spec), self._qemu_prefix(spec.mounts))[0]
        except BaseException:
            if self._running_qemu() is None:
                from . import virtiofsd

                virtiofsd.stop(self.dir)
                disks.unlock_all(self.dir)
            raise

    def _refuse_running(self) -> None:
        running = self._running_qemu()
        if running is not None:
            raise StartFailed(f"qemu of instance {self.dir.name!r} is already running (pid {running.pid})")

    def _guest_uid(self) -> int:
        from lima_core.users import guest_user

        return guest_user(self.config).uid

    def _qemu_prefix(self, shared: tuple[Any, ...] | list[Any]) -> list[str]:
        """With 9p mounts among *shared* and a guest uid other than the host user's: QEMU in a user namespace
        where the guest user's uid is the host user's (see :mod:`.idmap`)."""
        from . import idmap

        uid = self._guest_uid()
        if not any(m.mount_type == "9p" for m in shared) or not idmap.needed(uid):
            return []
        why = idmap.unavailable(uid)
        if why:
            log.warning("cannot map the guest user's uid %d to yours for 9p (%s): the guest sees the host's owners, "
                        "and may not write where you can", uid, why)
            return []
        return idmap.prefix(uid)

    def _start_virtiofsd(self, qemu: _Qemu, spec: cmdline.Spec) -> None:
        if not any(m.mount_type == "virtiofs" for m in spec.mounts):
            return
        from . import virtiofsd

        try:
            binary = virtiofsd.find(qemu.exe)
        except ValidationError as exc:
            raise StartFailed(str(exc)) from None
        virtiofsd.start(self.dir, binary, spec.mounts, self._guest_uid())

    def _spawn(self, exe: str, args: list[str], prefix: list[str]) -> tuple[subprocess.Popen, Path, int]:
        """Run QEMU (behind *prefix*, :mod:`.idmap`'s) and return once QMP answers: the process, its log, and
        where this run's output starts."""
        from . import cmdline

        d = self.dir
        for name in cmdline.STALE_FILES:
            try:
                (d / name).unlink()
            except FileNotFoundError:
                pass
        log_path = d / QEMU_LOG
        command = [*prefix, exe, *args]
        log.info("starting QEMU (hint: to watch the boot progress, see %s): %s", d / filenames.SERIAL_LOG,
                 " ".join(command))
        with open(log_path, "ab") as out:
            out.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(command)}\n".encode())
            out.flush()
            start = out.tell()
            try:
                # qemu.pid is written here, with the process's identity, as soon as the process exists:
                # QEMU writes it again (-pidfile) only once it has started, and until then a forced
                # stop would find nothing to kill. unshare (the prefix) execs QEMU in the same process.
                proc = pidfile.spawn(process.pid_path(d), command, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=out, start_new_session=True, close_fds=True)
            except OSError as exc:
                where = "" if exc.filename in (None, command[0]) else f" ({exc.filename})"
                raise StartFailed(f"cannot run {command[0]}: {exc.strerror or exc}{where}") from None
        self._wait_started(proc, log_path, start)
        return proc, log_path, start

    def _wait_started(self, proc: subprocess.Popen, log_path: Path, log_start: int) -> None:
        """Return once QMP answers (qemu sends its greeting only after the machine is built)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            code = proc.poll()
            if code is not None:
                raise StartFailed(f"qemu {processes.describe_exit(code)} at startup: "
                                  f"{processes.log_tail(log_path, log_start) or '(no output)'}")
            if self._qmp_sock.exists():
                try:
                    qmp.execute(self._qmp_sock, "query-status", connect_timeout=0.5, timeout=5.0)
                    self._restrict_sockets()
                    return
                except qmp.QMPUnavailable:
                    pass
                except qmp.QMPCommandError as exc:
                    log.warning("%s", exc)
                    self._restrict_sockets()
                    return
            if time.monotonic() >= deadline:
                processes.kill(proc)
                raise StartFailed(f"qemu did not answer on {self._qmp_sock} within {STARTUP_TIMEOUT:g} s; "
                                  f"see {log_path}")
            time.sleep(0.02)

    def _restrict_sockets(self) -> None:
        """QEMU makes its sockets (QMP: full control of the VM; the serial consoles) with its umask,
        0755 here; make them 0600 like every other socket of the instance. (Starting QEMU with umask
        077 would also narrow the files a guest creates through 9p.)"""
        from . import cmdline

        for name in cmdline.SOCKETS:
            try:
                os.chmod(self.dir / name, 0o600)
            except FileNotFoundError:
                pass

    def _spec(self, qemu: _Qemu, additional_disks: tuple[str, ...] = ()) -> cmdline.Spec:
        from lima_core import mounts

        from . import cmdline, firmware

        inst, cfg, d, arch = self.instance, self.config, self.dir, self.arch
        assert inst is not None
        shared: list[ResolvedMount] = []
        if cfg.mount_type in ("9p", "virtiofs") and not cfg.plain:
            shared = mounts.resolve(cfg)
            for m in shared:
                os.makedirs(m.location, exist_ok=True)
        cmdline_path = d / filenames.KERNEL_CMDLINE
        video = cfg.video
        audio = cfg.audio
        port = inst.ssh_local_port
        if not port:
            log.warning("instance %s has no SSH port; the guest's SSH will not be forwarded usefully", inst.name)
        return cmdline.Spec(
            name=inst.name, instance_dir=str(d), arch=arch, accel=qemu.accel.accel, cpu=qemu.cpu,
            memory_mib=self._memory_bytes() >> 20, cpus=self._cpus(),
            firmware=firmware.find(cfg, arch, qemu.exe, d),
            iso=(d / filenames.ISO).exists(), kernel=(d / filenames.KERNEL).exists(),
            kernel_cmdline=textfile.read(cmdline_path).strip() if cmdline_path.exists() else None,
            initrd=(d / filenames.INITRD).exists(),
            ssh_address=inst.ssh_address or DEFAULT_SSH_ADDRESS, ssh_local_port=port, mac=mac_address(d),
            mounts=tuple(shared), additional_disks=additional_disks,
            display=(video.display if video and video.display is not None else "none"),
            vnc_display=(video.vnc.display if video and video.vnc and video.vnc.display
                         else config.DEFAULT_VNC_DISPLAY),
            audio_device=(audio.device or "") if audio else "",
            audio_interface=(audio.interface or "") if audio else "",
            qemu_version=qemu.version, extra_args=qemu.extra_args)

    def _memory_bytes(self) -> int:
        if self.config.memory:
            return parse_size(self.config.memory, "memory")
        import psutil

        total = psutil.virtual_memory().total
        return min(4 << 30, total // 2)  # Lima's default: min(4 GiB, half the host)

    def _cpus(self) -> int:
        return self.config.cpus or min(4, os.cpu_count() or 1)  # Lima's default: min(4, host CPUs)

    @hookimpl
    def stop(self) -> None:
        d = self.dir
        proc = self._running_qemu()
        if proc is not None:
            self._shutdown(proc)
        elif savedstate.discard(d):
            log.info("discarded the saved state of %s (it was suspended)", d.name)
        if proc is None or processes.wait_exit(proc, 0):
            pid_file = process.pid_path(d)
            if pidfile.read(pid_file, expect=str(pid_file)).process is None:
                pidfile.remove(pid_file)
            disks.unlock_all(d)  # QEMU is gone: its additional disks are free
            from . import virtiofsd

            virtiofsd.stop(d)
        for name in (filenames.VNC_DISPLAY, filenames.VNC_PASSWORD):
            try:
                (d / name).unlink()
            except FileNotFoundError:
                pass

    def _shutdown(self, proc: psutil.Process) -> None:
        """Lima's shutdownQEMU: the power button over QMP, wait, then SIGKILL. A VM that cannot power down
        (paused, halted: see :mod:`.runstate`) is killed at once, before each press of the button."""
        log.info("shutting down QEMU (pid %d) with the power button", proc.pid)
        deadline = time.monotonic() + self.stop_timeout
        pressed = False
        while True:
            state = runstate.query(self._qmp_sock, self.arch)
            if state is not None and state.problem:
                log.warning("%s: the power button cannot stop it; killing QEMU", state.problem)
                processes.kill(proc)
                return
            try:
                qmp.execute(self._qmp_sock, "system_powerdown")
                pressed = True
            except (qmp.QMPUnavailable, qmp.QMPCommandError) as exc:
                if not pressed:
                    log.warning("%s; forcibly killing QEMU", exc)
                    processes.kill(proc)
                    return
                log.debug("pressing the power button again: %s", exc)
            if processes.wait_exit(proc, min(self.powerdown_interval, max(0.0, deadline - time.monotonic()))):
                break
            if time.monotonic() >= deadline:
                log.warning("QEMU did not exit in %g s, forcibly killing it", self.stop_timeout)
                processes.kill(proc)
                return
        log.info("QEMU has exited")

    # -- guest agent ----------------------------------------------------------------------

    @hookimpl
    def guest_agent_conn(self) -> Any:
        """QEMU's end of the guest agent's virtio-serial port (Lima's GuestAgentConn: dial ga.sock)."""
        path = self.dir / filenames.GUEST_AGENT_SOCK
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5.0)
        try:
            sock.connect(str(path))
        except OSError as exc:
            sock.close()
            raise DriverError(f"cannot connect to the guest agent's port {path}: {exc.strerror or exc}") from None
        sock.settimeout(None)
        return sock, "unix"

    # -- suspend (lima-core's) ------------------------------------------------------------

    @hookimpl
    def suspend(self) -> int:
        with self._lock:
            proc = self._running_qemu()
            if proc is None:
                raise DriverError(f"cannot suspend: instance {self.dir.name!r} is not running")
            return savedstate.save(self._qmp_sock, self.dir, proc)

    @hookimpl
    def resume(self) -> StartHandle:
        from . import cmdline

        inst, d = self.instance, self.dir
        assert inst is not None
        with self._lock:
            self._refuse_running()
            saved = savedstate.read(d)
            if saved is None:
                raise StartFailed(f"instance {inst.name!r} has no saved state to resume "
                                  f"({savedstate.state_path(d)} or {savedstate.info_path(d)} is missing)")
            savedstate.check(saved, d)
            exe, *args = saved.argv
            if inst.ssh_local_port:
                try:
                    args = cmdline.with_ssh_port(args, inst.ssh_local_port)
                except ValueError as exc:
                    raise StartFailed(f"cannot resume the VM: {exc}") from None
            # the saved command line attaches the additional disks it had: lock them again
            disks.attach(list(self.config.additional_disks or []), d)
            try:
                from lima_core import mounts

                # the saved command line is QEMU's own: the uid mapping's prefix is chosen again
                prefix = self._qemu_prefix(mounts.resolve(self.config))
                proc, log_path, start = self._spawn(exe, [*args, "-incoming", "defer"], prefix)
            except BaseException:
                disks.unlock_all(d)
                raise
            try:
                savedstate.restore(self._qmp_sock, d, saved, lambda: proc.poll() is None)
            except BaseException as exc:
                processes.kill(proc)
                disks.unlock_all(d)
                if isinstance(exc, StartFailed):
                    tail = processes.log_tail(log_path, start)
                    raise StartFailed(f"{exc.message}{f' (qemu: {tail})' if tail else ''}") from None
                raise
            self._proc = proc
        log.info("resumed the VM of %s from its saved state", inst.name)
        return StartHandle.for_process(proc, "qemu", on_cancel=lambda: processes.kill(proc))

    def _refuse_if_suspended(self, what: str) -> None:
        if not self._running() and savedstate.exists(self.dir):
            raise DriverError(f"cannot {what}: instance {self.dir.name!r} is suspended, and its disk must stay as "
                              f"it was saved; resume it (`lima resume {self.dir.name}`) or discard the saved state "
                              f"(`lima stop {self.dir.name}`) first")

    @hookimpl
    def inspect_status(self, instance: Instance) -> str:
        """Broken (with the reason in ``instance.errors``) while QEMU runs a VM that cannot run its guest: paused,
        halted (:mod:`.runstate`); else "" (the host reads qemu.pid, as Lima does). Costs a QMP query per
        running VM, nothing for a stopped one."""
        d = Path(instance.dir)
        pid_path = process.pid_path(d)
        if not pid_path.exists() or pidfile.read(pid_path, expect=str(pid_path), prune=False).process is None:
            return ""
        if savedstate.under_way(d):
            return ""  # QEMU pauses the VM on purpose while its state is saved or loaded
        cfg = instance.config
        state = runstate.query(d / filenames.QMP_SOCK, (cfg.arch if cfg is not None else None) or host_arch())
        if state is None or not state.problem:
            return ""
        instance.errors.append(state.problem)
        return STATUS_BROKEN


    # -- display --------------------------------------------------------------------------

    def _require_running(self, what: str) -> None:
        if self._running_qemu() is None:
            raise DriverError(f"cannot {what}: instance {self.dir.name!r} is not running")

    @hookimpl
    def change_display_password(self, password: str) -> None:
        self._require_running("set the VNC password")
        try:
            qmp.wait_for_socket(self._qmp_sock, VNC_SOCKET_WAIT)
            qmp.execute(self._qmp_sock, "change-vnc-password", {"password": password})
        except (qmp.QMPUnavailable, qmp.QMPCommandError) as exc:
            raise DriverError(f"cannot set the VNC password: {exc}") from None

    @hookimpl
    def display_connection(self) -> str:
        self._require_running("query the VNC display")
        try:
            vnc = qmp.execute(self._qmp_sock, "query-vnc")
        except (qmp.QMPUnavailable, qmp.QMPCommandError) as exc:
            raise DriverError(f"cannot query the VNC display: {exc}") from None
        if not vnc.get("enabled") or "service" not in vnc:
            raise DriverError(f"instance {self.dir.name!r} has no VNC display (video.display is "
                              f"{(self.config.video.display if self.config.video else None)!r})")
        return str(vnc["service"])

    # -- snapshots ------------------------------------------------------------------------

    def _running(self) -> bool:
        """Lima's rule: the state the instance had when configured."""
        return self.instance is not None and self.instance.status == STATUS_RUNNING

    def _tags(self, tag: str | None = None) -> list[str]:
        if tag is not None and (not tag or tag.startswith("-") or any(c.isspace() for c in tag)):
            raise DriverError(f"invalid snapshot tag {tag!r}: it must be non-empty, without spaces, "
                              "and not start with '-'")
        return disk.snapshot_tags(disk.require_qcow2(self._disk()))

    def _hmp(self, command_line: str) -> str:
        try:
            return qmp.hmp(self._qmp_sock, command_line)
        except (qmp.QMPUnavailable, qmp.QMPCommandError) as exc:
            raise DriverError(f"{command_line.split()[0]}: {exc} (is the instance running?)") from None

    def _snapshot(self, op: str, tag: str) -> None:
        """Lima's snapshot operations: HMP ``savevm``/``loadvm``/``delvm`` while running, else
        ``qemu-img snapshot`` on the disk. Only ``create`` takes a tag that does not exist yet."""
        command, must_exist = _SNAPSHOT_OPS[op]
        self._refuse_if_suspended(f"{op} snapshot {tag!r}")
        if (tag in self._tags(tag)) != must_exist:
            raise DriverError(f"snapshot {tag!r} " + ("not found" if must_exist else "already exists"))
        if not self._running():
            disk.offline_snapshot(self._disk(), op, tag)
            return
        text = self._hmp(f"{command} {tag}").strip()
        if any(line.startswith("Error") for line in text.splitlines()):
            raise DriverError(f"{command}: {' '.join(text.split())}")
        if text:
            log.warning("%s: %s", command, text)

    @hookimpl
    def create_snapshot(self, tag: str) -> None:
        self._snapshot("create", tag)

    @hookimpl
    def apply_snapshot(self, tag: str) -> None:
        self._snapshot("apply", tag)

    @hookimpl
    def delete_snapshot(self, tag: str) -> None:
        self._snapshot("delete", tag)

    @hookimpl
    def list_snapshots(self) -> str:
        self._tags()
        if not self._running():
            return disk.offline_list(self._disk())
        out = self._hmp("info snapshots")
        return out.replace("List of snapshots present on all disks:\n", "", 1).replace(
            "There is no snapshot available.\n", "", 1)

