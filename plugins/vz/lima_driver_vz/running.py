"""VMs running in this process, by instance directory, and ``vz.pid``.

A VZ VM lives inside the process that started it (the host agent, or the
external driver server). Several driver objects of that process (one per
client session of an external driver) reach the same VM through this
registry. ``vz.pid`` holds that process's pid, as in Lima, so other
processes can find it; lima-core records the process's identity beside it
(see ``lima_core.pidfile``) and removes the file when the VM stops.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from pathlib import Path

from lima_core import filenames, pidfile
from lima_core.errors import DriverError, StartFailed
from lima_core.starthandle import StartHandle

from . import datadisks
from .framework.machine import ERROR, STOPPED, Machine
from .sshforward import Forwarder

log = logging.getLogger("lima_driver_vz")

POLL_INTERVAL = 0.5
_registry: dict[str, RunningVM] = {}
_lock = threading.Lock()


@dataclasses.dataclass
class RunningVM:
    name: str
    instance_dir: Path
    machine: Machine
    handle: StartHandle
    locked_disks: list[str] = dataclasses.field(default_factory=list)
    forwarder: Forwarder | None = None
    stopped: threading.Event = dataclasses.field(default_factory=threading.Event)
    ssh_ready: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def pid_path(self) -> Path:
        return pid_path(self.instance_dir)


def pid_path(instance_dir: Path) -> Path:
    return instance_dir / filenames.pid_file("vz")


def _key(instance_dir: Path) -> str:
    return str(instance_dir.resolve())


def lookup(instance_dir: Path) -> RunningVM | None:
    with _lock:
        vm = _registry.get(_key(instance_dir))
    return vm if vm is not None and not vm.stopped.is_set() else None


def claim_pid_file(instance_dir: Path) -> None:
    """Refuse to start when another live process hosts this instance's VM; drop a stale vz.pid."""
    path = pid_path(instance_dir)
    status = pidfile.read(path)
    if status.process is not None and status.pid != os.getpid():
        raise StartFailed(f"the VM of {instance_dir.name} already runs in process {status.pid} ({path}); "
                          "stop it first")
    if status.reason and path.exists():  # a live process we may not touch (a reused pid was pruned)
        raise StartFailed(f"{path} exists and {status.reason}")
    pidfile.remove(path)


def register(vm: RunningVM) -> None:
    with _lock:
        current = _registry.get(_key(vm.instance_dir))
        if current is not None and not current.stopped.is_set():
            raise StartFailed(f"the VM of {vm.name} is already running in this process")
        _registry[_key(vm.instance_dir)] = vm
    pidfile.write(vm.pid_path, os.getpid())
    threading.Thread(target=_watch, args=(vm,), name=f"vz-watch-{vm.name}", daemon=True).start()


def _watch(vm: RunningVM) -> None:
    """Poll the VM's state; when it stops, clean up and close the start handle."""
    error: str | None = None
    while True:
        try:
            state = vm.machine.state()
        except DriverError as exc:
            error = f"lost track of the vz VM: {exc}"
            break
        if state in (STOPPED, ERROR):
            if state == ERROR:
                error = "the vz VM stopped in the error state; see serialv.log"
            break
        if vm.stopped.wait(POLL_INTERVAL):  # finished() ran elsewhere: nothing left to watch (and no busy loop)
            break
    finished(vm)
    if error:
        vm.handle.report(error)
    vm.handle.close()


def finished(vm: RunningVM) -> None:
    """The VM is gone: stop forwarding, release disks and vz.pid. Idempotent."""
    vm.stopped.set()
    vm.ssh_ready.set()
    if vm.forwarder is not None:
        vm.forwarder.close()
    for name in vm.locked_disks:
        datadisks.unlock(name, vm.instance_dir)
    status = pidfile.read(vm.pid_path, prune=False)
    if status.pid in (0, os.getpid()):
        pidfile.remove(vm.pid_path)
    with _lock:
        if _registry.get(_key(vm.instance_dir)) is vm:
            del _registry[_key(vm.instance_dir)]
    log.info("[vz] the VM of %s has stopped", vm.name)
