"""Instance operations: create, prepare, start, stop, delete (Lima's pkg/instance).

Each mutating operation holds ``instance.lock`` (filelock) while it runs; the
host agent holds ``ha.lock`` for its whole life, which is how "already
running" is known at once. No failure path deletes anything the operation did
not make itself: a failed ``create`` removes the directory it created, and
nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from . import (
    ansible,
    containerd,
    dirnames,
    disks,
    events,
    fields,
    filenames,
    limayaml,
    locks,
    pidfile,
    processes,
    registry,
    store,
    suspended,
    yamlfile,
)
from .errors import InstanceError, InstanceExists, InstanceLocked, InstanceNotFound, LimaError, SignalDenied
from .external import supervisor
from .host import DriverHost
from .limatype import STATUS_RUNNING, STATUS_STOPPED, STATUS_SUSPENDED, Instance

if TYPE_CHECKING:
    from . import download

log = logging.getLogger("lima_core")

INSTANCE_LOCK = "instance.lock"
HA_LOCK = filenames.HOST_AGENT_LOCK
HA_PID_WAIT = 10.0
GRACEFUL_STOP_TIMEOUT = 190.0  # Lima: 3 min 10 s for the exiting event
#: how long a host agent (or an external driver) may stay frozen by a signal before stop gives up on it
FROZEN_GRACE = processes.FROZEN_GRACE
DEFAULT_START_TIMEOUT = 600.0
SELF_EXE_ENV = "LIMA_SELF_EXE"
#: free space `lima start` wants in the instance directory before it runs the host agent
MIN_FREE_SPACE = 1 << 20

Progress = Callable[[str], None]


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


@contextlib.contextmanager
def instance_lock(inst_dir: Path, timeout: float = 10.0, what: str = "changed") -> Iterator[None]:
    try:
        with locks.exclusive(inst_dir / INSTANCE_LOCK, timeout):
            yield
    except locks.Busy:
        raise InstanceLocked(f"instance {inst_dir.name!r} is busy: another lima command is using it; "
                             "try again when it has finished") from None
    except locks.Gone:
        raise InstanceNotFound(f"instance {inst_dir.name!r} does not exist (it was deleted meanwhile)") from None


def _busy(inst_dir: Path) -> bool:
    """True while another command holds ``instance.lock`` (e.g. a start, before its host agent runs)."""
    return locks.held(inst_dir / INSTANCE_LOCK)


def host_agent_running(inst_dir: Path) -> bool:
    """True while a host agent holds the instance's ha.lock."""
    return locks.held(inst_dir / HA_LOCK)


# -- drivers --------------------------------------------------------------------------------


def load_driver(inst: Instance, *, ssh_local_port: int = 0, reg: registry.Registry | None = None) -> DriverHost:
    """The instance's driver, configured (Lima's CreateConfiguredDriver)."""
    if inst.config is None:
        raise InstanceError(f"instance {inst.name!r} is broken: {'; '.join(inst.errors) or 'no lima.yaml'}")
    reg = reg or registry.discover()
    entry = reg.get(inst.config.vm_type or "")
    host = registry.load(entry, inst.dir)
    if not host.info().features.static_ssh_port:
        inst.ssh_local_port = ssh_local_port
    host.configure(inst)
    store.write_driver_info(Path(inst.dir), entry.name, entry.location, sorted(host.implemented))
    return host


# -- create -----------------------------------------------------------------------------------


def create(name: str, data: dict[str, Any], source: str, progress: Progress | None = None,
           download_progress: download.Progress | None = None, text: str | None = None) -> Instance:
    """Make a new instance from template *data* (embedded, with edits applied).

    *text* is the template's own YAML, when it has no base, so errors and
    unknown-field warnings can point at its lines.
    """
    store.validate_name(name)
    inst_dir = dirnames.instance_dir(name)
    refuse_existing(name)
    store.check_socket_paths(name)
    cfg = limayaml.from_data(data, source, text=text, warn_unknown=True, inst_dir=inst_dir)
    reg = registry.discover()
    reg.get(cfg.vm_type or "")  # an unknown vmType fails before anything is written
    fields.enforce(cfg, cfg.vm_type or "", source, warn=False)  # `lima start` warns
    store.write_new(name, yamlfile.dump(data))
    try:
        with instance_lock(inst_dir):
            inst = store.inspect(name, driver_status=False)
            _say(progress, f"Creating instance {name!r} with the {cfg.vm_type} driver")
            host = load_driver(inst, reg=reg)
            host.validate()
            host.create()
            prepare(inst, host, progress, download_progress)
    except BaseException:
        with contextlib.suppress(Exception):
            supervisor.stop_servers(inst_dir, force=True)
        shutil.rmtree(inst_dir, ignore_errors=True)
        raise
    supervisor.stop_servers(inst_dir, force=False)
    return store.inspect(name, driver_status=False)


def prepare(inst: Instance, host: DriverHost, progress: Progress | None = None,
            download_progress: download.Progress | None = None) -> None:
    """Download the image (and kernel, initrd) if the instance has no disk yet; then CreateDisk."""
    fetch_images(inst, host, progress, download_progress)
    host.create_disk()


def fetch_images(inst: Instance, host: DriverHost, progress: Progress | None = None,
                 download_progress: download.Progress | None = None) -> None:
    """Put the image (and kernel, initrd) into the instance directory, unless it has ``image`` or ``disk``,
    in a format the driver takes (``DriverFeatures.supported_image_formats``)."""
    inst_dir = Path(inst.dir)
    if not (inst_dir / filenames.IMAGE).exists() and not (inst_dir / filenames.DISK).exists():
        formats = host.info().features.supported_image_formats
        _download_image(inst, formats, progress, download_progress)


def _download_image(inst: Instance, formats: list[str], progress: Progress | None,
                    download_progress: download.Progress | None) -> None:
    """Fetch the first image of the instance's arch that can be fetched, in one of the driver's *formats*."""
    from . import download  # here: urllib and http would cost every lima command and host agent their import

    assert inst.config is not None and inst.config.images is not None
    inst_dir = Path(inst.dir)
    failures = []
    for image in inst.config.images:
        if image.arch != inst.config.arch:
            continue
        _say(progress, f"Fetching {image.location}")
        try:
            if image.kernel is not None:
                download.fetch(image.kernel.location, inst_dir / filenames.KERNEL, digest=image.kernel.digest,
                               decompress=True, progress=download_progress)
                if image.kernel.cmdline:
                    (inst_dir / filenames.KERNEL_CMDLINE).write_text(image.kernel.cmdline)
            if image.initrd is not None:
                download.fetch(image.initrd.location, inst_dir / filenames.INITRD, digest=image.initrd.digest,
                               progress=download_progress)
            download.fetch(image.location, inst_dir / filenames.IMAGE, digest=image.digest,
                           progress=download_progress)
            converted = download.conform(inst_dir / filenames.IMAGE, formats, image.location)
            if converted:
                _say(progress, f"Converted the image from {converted} to raw (the driver takes {', '.join(formats)})")
            return
        except download.DownloadError as exc:
            failures.append(exc.message)
            for f in (filenames.KERNEL, filenames.KERNEL_CMDLINE, filenames.INITRD, filenames.IMAGE):
                with contextlib.suppress(FileNotFoundError):
                    (inst_dir / f).unlink()
    if not failures:
        raise download.DownloadError(f"no image in lima.yaml is for arch {inst.config.arch}")
    raise download.DownloadError("could not fetch any image: " + "; ".join(failures))


# -- start ------------------------------------------------------------------------------------


def hostagent_command(name: str) -> list[str]:
    return [sys.executable, "-m", "lima_core", "hostagent", name]


def refuse_existing(name: str) -> None:
    """:raises InstanceExists: an instance *name* exists; the hint fits its status."""
    if not dirnames.instance_dir(name).exists():
        return
    if store.inspect(name).status == STATUS_STOPPED:
        raise InstanceExists(f"instance {name!r} already exists; run `lima start {name}` (a template is only used "
                             f"to create an instance), or `lima delete {name}` first to recreate it")
    raise InstanceExists(f"instance {name!r} already exists and is not stopped; `lima delete -f {name}` "
                         "first to recreate it")


def start(name: str, timeout: float = DEFAULT_START_TIMEOUT, progress: Progress | None = None,
          download_progress: download.Progress | None = None, foreground: bool = False, *,
          resume_only: bool = False) -> bool:
    """Start the host agent and wait until the instance is Running; a suspended instance is resumed.

    Returns False when the instance was already running. *foreground*: once the checks pass,
    this process becomes the host agent (``lima start --foreground``) and does not return.
    *resume_only*: refuse an instance that is not suspended (``lima resume``).
    """
    inst_dir = store.existing_dir(name)
    store.check_socket_paths(name)
    with instance_lock(inst_dir, timeout=30):
        if host_agent_running(inst_dir):
            return False
        # The VM's pid file says whether it runs without its host agent; asking the driver
        # would cost an external driver one more process (and the host agent asks it anyway).
        inst = store.inspect(name, driver_status=False)
        if inst.errors and inst.config is None:
            raise InstanceError(f"instance {name!r} is broken: {'; '.join(inst.errors)}; fix that, or run "
                                f"`lima delete -f {name}` to remove the instance")
        assert inst.config is not None
        record = suspended.read(inst_dir) if inst.status == STATUS_SUSPENDED else None
        if resume_only and record is None:
            raise InstanceError(f"instance {name!r} is not suspended (it is {inst.status or 'in an unknown state'}); "
                                f"`lima start {name}` boots it")
        # Refusals here, before anything runs; the host agent, which knows the driver's features, warns.
        fields.enforce(inst.config, inst.vm_type, str(inst_dir / filenames.LIMA_YAML), warn=False)
        if inst.driver_pid:
            raise InstanceError(f"the VM of instance {name!r} is still running without its host agent "
                                f"(pid {inst.driver_pid}); run `lima stop -f {name}` first")
        reg = registry.discover()
        entry = reg.get(inst.vm_type)
        how = f"with {'external' if entry.is_external else 'internal'} VM driver {inst.vm_type!r}"
        if record is not None:
            _say(progress, f"Resuming the instance {name!r} {how} from the state saved at {record.time}")
        else:
            _say(progress, f"Starting the instance {name!r} {how}")
        if record is None and not (inst_dir / filenames.DISK).exists():
            # The image is fetched here, where a progress bar can be shown. Otherwise the host
            # agent alone validates and prepares (it does anyway): one driver load, not two.
            host = load_driver(inst, reg=reg)
            host.validate()
            host.create()
            prepare(inst, host, progress, download_progress)
        _check_space(inst_dir)
        if containerd.wanted(inst.config):
            # Into the download cache, where the host agent takes it for cidata.
            try:
                containerd.archive(inst.config, progress=download_progress)
            except LimaError as exc:
                log.warning("%s", containerd.unavailable_message(inst.config, exc.message))
        if entry.is_external:
            # Its start overlaps the host agent's; the host agent's connect waits for it.
            supervisor.launch(entry.location, entry.name, inst_dir)
        if foreground:
            _exec_host_agent(inst_dir, name)
        try:
            ha = _spawn_host_agent(inst_dir, name)
        except BaseException:
            if entry.is_external:
                supervisor.stop_servers(inst_dir, force=True)
            raise
    _wait_running(name, inst_dir, ha, timeout, progress, resuming=record is not None)
    if record is None:
        ansible.run_playbooks(store.inspect(name, driver_status=False))
    return True


def _check_space(inst_dir: Path) -> None:
    """The host agent writes cidata, logs and sockets; on a full disk it could not even say why it failed."""
    try:
        st = os.statvfs(inst_dir)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_SPACE:
        raise InstanceError(f"{inst_dir}: No space left on device ({free >> 10} KiB free; starting needs about "
                            f"{MIN_FREE_SPACE >> 20} MiB for cidata and logs)")


def _exec_host_agent(inst_dir: Path, name: str) -> None:
    """Become the host agent: its events still go to ha.stdout.log (``lima list``, ``lima watch`` read
    them there), its log to this terminal. The instance lock is released by the exec (close-on-exec)."""
    env = dict(os.environ)
    env.setdefault(SELF_EXE_ENV, os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "")
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(inst_dir / filenames.HOST_AGENT_STDOUT_LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.close(fd)
    command = hostagent_command(name)
    os.execve(command[0], command, env)


def _spawn_host_agent(inst_dir: Path, name: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.setdefault(SELF_EXE_ENV, os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "")
    with open(inst_dir / filenames.HOST_AGENT_STDOUT_LOG, "w") as out, \
            open(inst_dir / filenames.HOST_AGENT_STDERR_LOG, "w") as err:
        proc = subprocess.Popen(hostagent_command(name), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True, close_fds=True, env=env)
    deadline = time.monotonic() + HA_PID_WAIT
    while not store.host_agent(inst_dir).alive:
        if proc.poll() is not None:
            last = events.last(inst_dir / filenames.HOST_AGENT_STDOUT_LOG)
            if last is not None and last.exiting:
                return proc  # it failed fast and said why in its events, which the caller reports
            raise InstanceError(f"the host agent of {name!r} {processes.describe_exit(proc.returncode)} at once: "
                                f"{_tail(inst_dir)}")
        if time.monotonic() > deadline:
            raise InstanceError(f"the host agent of {name!r} did not start within {HA_PID_WAIT:g} s; "
                                f"see {inst_dir / filenames.HOST_AGENT_STDERR_LOG}")
        time.sleep(0.02)
    return proc


def _tail(inst_dir: Path) -> str:
    """The end of the host agent's stderr, for an error message."""
    return processes.log_tail(inst_dir / filenames.HOST_AGENT_STDERR_LOG, lines=3) or "(no output)"


def _wait_running(name: str, inst_dir: Path, ha: subprocess.Popen, timeout: float,
                  progress: Progress | None, resuming: bool = False) -> None:
    deadline = time.monotonic() + timeout
    waiting, last_error = "", ""
    for event in events.follow(inst_dir / filenames.HOST_AGENT_STDOUT_LOG,
                               stop=lambda: ha.poll() is not None or time.monotonic() > deadline):
        if event.message:
            _say(progress, event.message)
        if event.waiting_for:
            if event.waiting_for != waiting:
                last_error = ""
            waiting = event.waiting_for
            last_error = event.last_error or last_error
        if event.exiting:
            with contextlib.suppress(subprocess.TimeoutExpired):
                ha.wait(30)  # let it finish cleaning up, so the status is final
            reason = "; ".join(event.errors) or "it stopped"
            log_path = inst_dir / filenames.HOST_AGENT_STDERR_LOG
            if resuming and suspended.exists(inst_dir):
                raise InstanceError(f"instance {name!r} failed to resume: {reason} (log: {log_path}). Its saved "
                                    f"state and disk are kept: `lima resume {name}` tries again; `lima stop {name}` "
                                    f"discards the saved state, and `lima start {name}` then boots afresh")
            raise InstanceError(f"instance {name!r} failed to {'resume' if resuming else 'start'}: {reason} "
                                f"(log: {log_path})")
        if event.running:
            if event.degraded:
                for error in event.errors:
                    log.error("%s", error)
                raise InstanceError(f"instance {name!r} is running but DEGRADED: {len(event.errors)} "
                                    f"problem(s) above; the VM is left running to look into "
                                    f"(`lima shell {name}`, /var/log/cloud-init-output.log in the guest; "
                                    f"`lima stop {name}` to stop it)")
            return
    if ha.poll() is not None:
        if ha.returncode < 0:
            # Killed: by a `lima stop -f` or `lima delete -f` that holds the lock while it cleans up.
            with contextlib.suppress(LimaError), instance_lock(inst_dir, timeout=30):
                pass
        if not inst_dir.is_dir():
            raise InstanceError(f"instance {name!r} was deleted while it was starting")
        raise InstanceError(f"the host agent of {name!r} {processes.describe_exit(ha.returncode)} while the instance "
                            f"was starting: {_tail(inst_dir)}")
    pending = f"; still waiting for {waiting!r}" + (f" (last error: {last_error})" if last_error else "") \
        if waiting else ""
    raise InstanceError(f"instance {name!r} did not become ready within {timeout:g} s{pending}; it is still "
                        f"starting in the background (see {inst_dir / filenames.HOST_AGENT_STDERR_LOG}), or run "
                        f"`lima stop -f {name}`")


# -- stop -------------------------------------------------------------------------------------


def stop(name: str, progress: Progress | None = None, timeout: float = GRACEFUL_STOP_TIMEOUT) -> bool:
    """Graceful stop: SIGINT to the host agent, which stops the VM. False if it was not running.

    A start that is launching the host agent (it holds the instance, which
    has its disk) is waited for, so a stop that arrives early still stops
    it. A host agent frozen by a signal (SIGSTOP, a debugger) cannot stop
    anything: after :data:`FROZEN_GRACE` seconds the instance is stopped as
    ``lima stop -f`` does, saying so.
    """
    inst_dir = store.existing_dir(name)
    ha = _host_agent_of_a_start(inst_dir)
    if not ha.alive or ha.process is None:
        inst = store.inspect(name)
        if inst.driver_pid:
            raise InstanceError(f"the {inst.vm_type} VM of instance {name!r} is running without its host agent "
                                f"(pid {inst.driver_pid}); run `lima stop -f {name}`")
        if _busy(inst_dir):
            raise InstanceLocked(f"instance {name!r} is being started or changed by another lima command; "
                                 "run `lima stop` again when that has finished")
        return False
    _say(progress, f"Sending SIGINT to the host agent (pid {ha.pid})")
    with contextlib.suppress(psutil.NoSuchProcess):
        ha.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    frozen_since: float | None = None
    while not processes.wait_exit(ha.process, 0.2):
        now = time.monotonic()
        if processes.frozen(ha.process):
            frozen_since = frozen_since or now
            if now - frozen_since >= FROZEN_GRACE:
                log.warning("the host agent of %r (pid %d) is frozen (stopped by a signal) and cannot stop the VM; "
                            "stopping the instance forcibly", name, ha.pid)
                for note in stop_force(name):
                    log.warning("%s", note)
                return True
        else:
            frozen_since = None
        if now > deadline:
            raise InstanceError(f"instance {name!r} did not stop within {timeout:g} s; run `lima stop -f {name}`")
    last = events.last(inst_dir / filenames.HOST_AGENT_STDOUT_LOG)
    if last is not None and last.errors:
        log.warning("instance %r stopped with errors: %s", name, "; ".join(last.errors))
    deadline = time.monotonic() + 30
    while store.inspect(name).status != STATUS_STOPPED:
        if time.monotonic() > deadline:
            raise InstanceError(f"instance {name!r} is not Stopped after its host agent exited; "
                                f"run `lima stop -f {name}`")
        time.sleep(0.1)
    return True


def _host_agent_of_a_start(inst_dir: Path) -> pidfile.PidStatus:
    """The host agent; when there is none yet but a start holds the instance to launch one (the instance has
    its disk, so the start is past preparing it), the one it launches, once its pid file is written."""
    ha = store.host_agent(inst_dir)
    if ha.alive or not (inst_dir / filenames.DISK).exists():
        return ha
    deadline = time.monotonic() + HA_PID_WAIT + 5
    while _busy(inst_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
        ha = store.host_agent(inst_dir)
        if ha.alive:
            return ha
    return store.host_agent(inst_dir)


def stop_forcibly(inst_dir: Path, vm_type: str) -> list[str]:
    """Lima's StopForcibly: kill the host agent, the VM and the external drivers; remove pid/sock/tmp files.

    Holds the instance's spawn lock throughout (``pidfile.no_spawns``): a
    VM being spawned is recorded before its pid file is read, and nothing
    starts one meanwhile. The host agent goes first, so it cannot react to
    the VM's death (by restarting a driver to stop it) while we clean up.
    The VM is looked for in every ``<vmType>.pid`` (the configuration may
    be unreadable). Only processes proven to be ours are signalled; the
    notes say what was left alone.

    :raises InstanceError: a process of the instance is still alive afterwards (its pid file is kept).
    """
    notes: list[str] = []
    with pidfile.no_spawns(inst_dir):
        vms = [store.vm_process(inst_dir, t) for t in _vm_types(inst_dir, vm_type)]
        for status in [store.host_agent(inst_dir, thorough=True), *vms]:
            if status.process is not None:
                try:
                    processes.kill(status.process, group=True)
                except SignalDenied as exc:
                    notes.append(exc.message)
            elif status.reason:
                notes.append(status.reason)
        notes += supervisor.stop_servers(inst_dir, force=True)
        notes += _kill_helpers(inst_dir)
        alive = _live_processes(inst_dir, vm_type)
        if not store.vm_process(inst_dir, vm_type).alive:  # Lima: unlock the additional disks
            disks.unlock_all(inst_dir)
        for entry in inst_dir.iterdir():
            if entry.name.endswith(filenames.TMP_FILE_SUFFIXES + (filenames.PID_IDENTITY_SUFFIX,)) \
                    and not entry.is_dir() and not any(entry.name.startswith(path.name) for path, _ in alive):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
    if alive:
        what = ", ".join(f"{pid} ({path.name})" for path, pid in alive)
        raise InstanceError(f"instance {inst_dir.name!r} still has live processes after SIGKILL: {what}; "
                            f"their pid files are kept for another `lima stop -f {inst_dir.name}`")
    return notes


def _vm_types(inst_dir: Path, vm_type: str) -> list[str]:
    """*vm_type* and the type of every other VM pid file in *inst_dir* (``<vmType>.pid``)."""
    found = {vm_type} if vm_type else set()
    for path in inst_dir.glob("*.pid"):
        if path.name != filenames.HOST_AGENT_PID and not path.name.endswith(filenames.DRIVER_PID_SUFFIX) \
                and not _HELPER_PID.fullmatch(path.name):
            found.add(path.name[: -len(".pid")])
    return sorted(found)


def _live_processes(inst_dir: Path, vm_type: str) -> list[tuple[Path, int]]:
    """(pid file, pid) of each process of the instance still alive: host agent, VMs, driver servers."""
    types = _vm_types(inst_dir, vm_type)
    statuses = [store.host_agent(inst_dir, thorough=True)] + [store.vm_process(inst_dir, t) for t in types]
    files = [inst_dir / filenames.HOST_AGENT_PID] + [inst_dir / filenames.pid_file(t) for t in types]
    for path in sorted(inst_dir.glob("*" + filenames.DRIVER_PID_SUFFIX)):
        statuses.append(supervisor.server_pid(inst_dir, path.name[: -len(filenames.DRIVER_PID_SUFFIX)]))
        files.append(path)
    return [(path, status.pid) for path, status in zip(files, statuses, strict=True)
            if status.process is not None and not processes.wait_exit(status.process, 0)]


#: the pid files of processes run beside the VM, one per mount: sshfs-0.pid, sftp-server-0.pid, virtiofsd-0.pid
_HELPER_PID = re.compile(r".+-[0-9]+\.pid")


def _kill_helpers(inst_dir: Path) -> list[str]:
    """Kill the processes run beside the VM (a driver's virtiofsd, the host agent's ssh and sftp-server of a
    reverse-sshfs mount) that could outlive it, or wait for a VM that never comes: those of a helper's pid
    file with lima-core's identity record."""
    notes: list[str] = []
    for path in sorted(inst_dir.glob("*.pid")):
        if not _HELPER_PID.fullmatch(path.name) or not pidfile.identity_path(path).exists():
            continue
        status = pidfile.read(path)
        if status.process is None:
            continue
        try:
            processes.kill(status.process)
        except SignalDenied as exc:
            notes.append(exc.message)
    return notes



def stop_force(name: str) -> list[str]:
    inst_dir = store.existing_dir(name)
    inst = store.inspect(name, driver_status=False)
    with instance_lock(inst_dir, timeout=30):
        return stop_forcibly(inst_dir, inst.vm_type)


# -- delete -----------------------------------------------------------------------------------


def delete(name: str, force: bool = False) -> list[str]:
    """Delete the instance, and finish interrupted deletes of that name. Notes to warn about."""
    inst_dir = dirnames.instance_dir(name)
    store.validate_name(name)
    notes = finish_interrupted_deletes(name)
    if not inst_dir.is_dir():
        return notes or [f"instance {name!r} does not exist; nothing to delete"]
    inst = store.inspect(name)
    if inst.protected:
        raise InstanceError(f"instance {name!r} is protected; run `lima unprotect {name}` to allow deleting it")
    # A suspended instance runs nothing: its saved state goes with its directory.
    if not force and inst.status not in (STATUS_STOPPED, STATUS_SUSPENDED):
        if inst.status == STATUS_RUNNING:
            raise InstanceError(f"instance {name!r} is running; run `lima stop {name}` first, or "
                                f"`lima delete -f {name}`")
        # Broken (or a driver's own status): `lima stop` may not apply; a forced delete always does.
        why = f" ({'; '.join(inst.errors)})" if inst.errors else ""
        raise InstanceError(f"instance {name!r} is {inst.status or 'in an unknown state'}{why}; "
                            f"`lima delete -f {name}` deletes it anyway")
    with instance_lock(inst_dir, timeout=30):
        notes += stop_forcibly(inst_dir, inst.vm_type)
        if not inst.errors or inst.config is not None:
            try:
                host = load_driver(inst)
                host.delete()
            except LimaError as exc:
                notes.append(f"the driver could not clean up outside the instance directory: {exc.message}")
            finally:
                supervisor.stop_servers(inst_dir, force=True)
        _remove_instance_dir(inst_dir)
    return notes


def finish_interrupted_deletes(name: str) -> list[str]:
    """Remove what interrupted ``lima delete`` runs of *name* left in LIMA_HOME; a note for each."""
    notes = []
    for path in store.interrupted_deletes(name):
        try:
            shutil.rmtree(path)
        except OSError as exc:
            notes.append(f"cannot remove {path}, left by an interrupted `lima delete {name}`: {exc.strerror or exc}")
        else:
            notes.append(f"removed {path}, left by an interrupted `lima delete {name}`")
    return notes


def _remove_instance_dir(inst_dir: Path) -> None:
    """Remove *inst_dir*, first renaming it out of LIMA_HOME's instances in one step: a command waiting
    for the instance's lock creates the lock file at each try, which could land in the directory while
    it is being emptied (its removal then failed with "Directory not empty"). If the removal fails, the
    rest goes back under the instance's name, for another ``lima delete -f``."""
    doomed = dirnames.deleting_dir(inst_dir.name, os.getpid())
    os.rename(inst_dir, doomed)
    try:
        shutil.rmtree(doomed)
    except OSError:
        with contextlib.suppress(OSError):
            os.rename(doomed, inst_dir)
        raise
