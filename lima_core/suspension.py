"""Suspending an instance, and discarding the state of a suspended one (lima-core's, beyond Lima).

``lima suspend`` asks the instance's host agent (``POST /v1/suspend`` on
``ha.sock``): the host agent is where the driver runs the VM, so it saves the
VM through the driver's ``suspend`` hook, writes the suspend record
(:mod:`lima_core.suspended`) and exits, leaving the instance Suspended.
Resuming is a start: the host agent finds the record and calls the driver's
``resume`` instead of ``start`` (``lima resume`` is ``lima start`` limited to
suspended instances). Discarding (``lima stop`` on a suspended instance) calls
the driver's ``stop``, which removes the saved state, and removes the record:
the instance is Stopped and its next start boots afresh.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from . import events, filenames, haclient, instance, processes, store, suspended
from .errors import InstanceError, LimaError, UnsupportedOperation
from .external import supervisor
from .limatype import STATUS_RUNNING, STATUS_SUSPENDED

log = logging.getLogger("lima_core")

#: how long the host agent may take to sync the guest and save the VM
SUSPEND_TIMEOUT = 600.0
#: how long it then has to exit
EXIT_TIMEOUT = 60.0

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Saved:
    """What ``lima suspend`` tells the user."""

    state_bytes: int
    #: the host agent's time for the suspend (guest work and the driver's save)
    milliseconds: int


def is_suspended(name: str) -> bool:
    return store.inspect(name, driver_status=False).status == STATUS_SUSPENDED


def suspend(name: str, progress: Progress | None = None) -> Saved | None:
    """Save instance *name*'s VM and end its processes; None when it was suspended already.

    :raises InstanceError: it is not running (or not ready yet), or the VM could not be saved (it then runs on).
    :raises UnsupportedOperation: its driver cannot suspend.
    """
    inst_dir = store.existing_dir(name)
    inst = store.inspect(name, driver_status=False)
    if inst.status == STATUS_SUSPENDED:
        return None
    ha = store.host_agent(inst_dir)
    if inst.status != STATUS_RUNNING or not ha.alive or ha.process is None:
        state = inst.status or "in an unknown state"
        why = f" ({'; '.join(inst.errors)})" if inst.errors else ""
        raise InstanceError(f"instance {name!r} is {state}{why}; only a running instance can be suspended")
    driver = store.read_driver_info(inst_dir)  # what the host agent recorded when it loaded the driver
    if isinstance(driver.get("hooks"), list) and "suspend" not in driver["hooks"]:
        raise UnsupportedOperation(f"driver {driver.get('name') or inst.vm_type!r} does not support suspend")
    with instance.instance_lock(inst_dir, timeout=30, what="suspended"):
        if progress is not None:
            progress(f"Saving the state of instance {name!r}")
        answer = haclient.request(inst_dir, "POST", "/v1/suspend", timeout=SUSPEND_TIMEOUT)
        if not processes.wait_exit(ha.process, EXIT_TIMEOUT):
            raise InstanceError(f"the host agent of {name!r} saved the VM but did not exit within "
                                f"{EXIT_TIMEOUT:g} s; see {inst_dir / filenames.HOST_AGENT_STDERR_LOG}")
    last = events.last(inst_dir / filenames.HOST_AGENT_STDOUT_LOG)
    if last is not None and last.errors:
        log.warning("instance %r was suspended with errors: %s", name, "; ".join(last.errors))
    status = store.inspect(name, driver_status=False).status
    if status != STATUS_SUSPENDED:
        raise InstanceError(f"instance {name!r} is {status or 'in an unknown state'} after its host agent saved it, "
                            f"not Suspended; see {inst_dir / filenames.HOST_AGENT_STDERR_LOG}")
    return Saved(int(answer.get("stateBytes") or 0), int(answer.get("milliseconds") or 0))


def discard(name: str, progress: Progress | None = None) -> bool:
    """Throw away the saved state of suspended instance *name*, leaving it Stopped; False if it was not suspended.

    The driver's ``stop`` removes its saved state; if the driver cannot be
    reached, the record goes anyway (the driver's next ``start`` boots
    afresh) and a warning says what was left.
    """
    inst_dir = store.existing_dir(name)
    if not is_suspended(name):  # without the lock: a start in progress holds it, and is not ours to wait for
        return False
    with instance.instance_lock(inst_dir, timeout=30, what="stopped"):
        inst = store.inspect(name, driver_status=False)
        if inst.status != STATUS_SUSPENDED:
            return False
        try:
            record = suspended.read(inst_dir)
        except InstanceError:
            record = None
        size = f" ({record.state_bytes >> 20} MiB)" if record is not None and record.state_bytes else ""
        if progress is not None:
            progress(f"Instance {name!r} is suspended: discarding its saved state{size}; the guest loses what "
                     "was in its memory, and its disk stays as the guest last synced it")
        try:
            host = instance.load_driver(inst)
            try:
                host.stop()
            finally:
                host.close()
        except LimaError as exc:
            log.warning("the %s driver could not discard its saved state (%s); its files stay in %s until the "
                        "next start", inst.vm_type, exc.message, inst_dir)
        finally:
            supervisor.stop_servers(inst_dir, force=True)
        suspended.remove(inst_dir)
    return True
