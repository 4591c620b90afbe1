"""The driver contract: one hookspec per method of Lima's Driver interface.

A driver is a plain class whose methods carry ``@lima_core.hookimpl`` and are
named as below. The host creates one driver object per instance and calls it
through pluggy with keyword arguments; an implementation may accept fewer
arguments than its spec. Every hook is ``firstresult``: exactly one driver
answers.

A driver need not implement every hook. What the host does when one is
missing is part of the contract and is written under "Not implemented" in each
docstring: some have a neutral default, some are reported to the user as
unsupported ("driver 'wsl2' does not support snapshots"), and ``info``,
``start`` and ``stop`` are required.

Beyond Lima's interface, lima-core adds hooks of its own: ``capture_screenshot``
(Lima's optional Screenshotter), ``check_host``, and the ``suspend``
capability (``suspend``, ``resume``). An external driver serves them on
lima-core's extension service; a plain Lima driver lacks them, and the host
applies their fallback.

State: ``configure`` hands the driver its instance; every later hook works on
that instance. ``info`` must answer before ``configure`` has been called.
While the VM runs the host may call ``info`` and ``forward_guest_agent`` from
other threads at the same time as any other hook.

Errors: raise a :class:`lima_core.errors.LimaError` subclass with a message a
user can act on. Anything else is reported as a driver failure with its
message. Across the gRPC boundary the class and message are preserved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pluggy

from .limatype import Info, Instance
from .starthandle import StartHandle

PROJECT = "lima"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclasses.dataclass(frozen=True)
class Fallback:
    """What the host does when a driver does not implement a hook."""

    #: "required", "unsupported" or "default".
    policy: str
    #: For "unsupported": the capability named in the error.
    capability: str = ""
    #: For "default": a function of the host returning the value.
    value: Callable[[Any], Any] | None = None


REQUIRED = Fallback("required")


def unsupported(capability: str) -> Fallback:
    return Fallback("unsupported", capability=capability)


def default(value: Callable[[Any], Any]) -> Fallback:
    return Fallback("default", value=value)


def _none(_host: Any) -> None:
    return None


NOOP = default(_none)

#: hook name -> Fallback, filled by @_spec in declaration order.
FALLBACKS: dict[str, Fallback] = {}
#: hook name -> the capability it belongs to, for conformance reports.
CAPABILITIES: dict[str, str] = {}


def _spec(capability: str, fallback: Fallback) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        FALLBACKS[fn.__name__] = fallback
        CAPABILITIES[fn.__name__] = capability
        return hookspec(firstresult=True)(fn)

    return mark


# -- Info and Configure -------------------------------------------------------------------


@_spec("info", REQUIRED)
def info() -> Info:
    """Identity and feature flags of the driver.

    Called first, before ``configure`` (the driver may not have an instance
    yet), and again at any time, possibly concurrently, while the VM runs.

    :returns: :class:`~lima_core.limatype.Info`. ``name`` is the vmType the
        driver serves; ``instance_dir`` is set once configured.
    Not implemented: the driver cannot be loaded.
    """


@_spec("configure", NOOP)
def configure(instance: Instance) -> Instance | None:
    """Take the instance, fill driver defaults into its config, check it.

    Called before any hook that needs the configuration, in every process
    that drives the instance (the CLI for create, the host agent for start).

    :param instance: the instance, with ``config`` holding lima.yaml as
        loaded. Mutate ``instance.config`` in place (e.g. set ``vm_type``,
        ``mount_type``); fields you do not know must be left alone.
    :returns: None (or the same instance). The host sends the mutated
        instance back to its caller.
    :raises ConfigError: the configuration cannot work with this driver.
    Not implemented: the instance is used as is.
    """


@_spec("lifecycle", NOOP)
def validate() -> None:
    """Reject a configuration this driver cannot run on this host.

    Called after ``configure`` on create and on start.

    :raises ValidationError: one sentence saying what is wrong and what to do
        (host OS version, arch, mount type, ...).
    :raises HostUnsupported: the driver cannot run on this host at all.
    Not implemented: every configuration is accepted.
    """


@_spec("lifecycle", NOOP)
def create() -> None:
    """First-time provisioning of driver state in the instance directory.

    Must succeed, doing nothing, when the instance already exists, and must
    not create disks. Not implemented: nothing to provision.
    """


@_spec("lifecycle", NOOP)
def create_disk() -> None:
    """Turn the downloaded ``image`` into ``disk`` (or ``iso`` plus an empty disk).

    Called after ``create`` once the image (and kernel/initrd) is in the
    instance directory, and again by the host agent on every start; does
    nothing when ``disk`` exists (a larger ``disk:`` may grow it).
    Not implemented: the driver uses no disk.
    """


# -- Lifecycle ------------------------------------------------------------------------------


@_spec("lifecycle", REQUIRED)
def start() -> StartHandle:
    """Begin booting the VM and return once boot has been initiated.

    Called by the host agent after ``boot_scripts`` (cidata is ready).

    :returns: a :class:`~lima_core.starthandle.StartHandle`. Report runtime
        errors on it and close it when the VM has ended; the host treats the
        first event as "the driver stopped".
    :raises StartFailed: the VM could not be started.
    """


@_spec("lifecycle", REQUIRED)
def stop() -> None:
    """Shut the VM down; return when it has exited or the driver's deadline passed.

    May be called from a process other than the one that ran ``start`` (a
    forced stop from the CLI, a restarted host agent): find the VM from the
    instance directory, not from memory only. On a suspended instance (no VM
    runs; ``suspend`` saved its state) ``stop`` discards that saved state, as
    powering off would lose the memory: the next ``start`` boots afresh.
    """


@_spec("lifecycle", NOOP)
def delete() -> None:
    """Remove driver state outside the instance directory (e.g. ``wsl --unregister``).

    The host removes the instance directory itself afterwards.
    Not implemented: nothing outside the directory to remove.
    """


@_spec("lifecycle", default(lambda _host: ""))
def inspect_status(instance: Instance) -> str:
    """The instance's status as the driver sees it, or "" to let the host decide.

    Called on an instance that may never have been configured in this
    process (``lima list``). Drivers whose VM state lives on the host side
    (wsl2) return it; others return "" and the host reads pid files. A
    driver whose VM process lives but cannot run its guest (qemu: paused
    by QEMU, halted) returns "Broken" and appends the reason to
    ``instance.errors``. Keep it cheap for a stopped VM: ``lima list``
    asks for every instance.

    :param instance: may be mutated (wsl2 sets ``ssh_local_port`` and
        ``ssh_address``).
    Not implemented: "".
    """


@_spec("lifecycle", default(lambda _host: {}))
def boot_scripts() -> dict[str, bytes]:
    """Extra scripts for cidata, run in the guest at every boot.

    :returns: ``{"boot.<OS>/<SCRIPT>": content}``. A bare ``<SCRIPT>`` key is
        a deprecated alias for ``boot.Linux/<SCRIPT>``; any other key with a
        ``/`` is rejected by the host.
    Not implemented: no scripts.
    """


# -- GUI ------------------------------------------------------------------------------------


@_spec("gui", unsupported("a GUI"))
def run_gui() -> None:
    """Run the VM's window; return only when the VM ends.

    Called only when ``info().features.can_run_gui``.
    """


@_spec("display", unsupported("a display"))
def change_display_password(password: str) -> None:
    """Set the VNC password (called when ``video.display`` is ``vnc``).

    :param password: 8 alphanumeric characters chosen by the host agent.
    """


@_spec("display", unsupported("a display"))
def display_connection() -> str:
    """The display endpoint; for VNC the TCP port as a string (e.g. "5900")."""


@_spec("screenshots", unsupported("screenshots"))
def capture_screenshot(format: str) -> bytes:
    """Capture the VM's display (optional; Lima's Screenshotter).

    :param format: "png" (also when "") or "bmp".
    :raises NoDisplay: the VM has no display to capture.
    """


# -- SnapshotManager --------------------------------------------------------------------


@_spec("snapshots", unsupported("snapshots"))
def create_snapshot(tag: str) -> None:
    """Save the VM as snapshot *tag*: memory and disks while it runs, disks while stopped.

    Called by ``lima snapshot create``, in either state; the driver checks the
    state itself (``instance.status`` as configured).

    :param tag: the snapshot name given by the user.
    :raises DriverError: the tag exists, or the disk format has no snapshots.
    Not implemented: "driver 'x' does not support snapshots".
    """


@_spec("snapshots", unsupported("snapshots"))
def apply_snapshot(tag: str) -> None:
    """Revert the VM (running: memory and disks; stopped: disks) to snapshot *tag*.

    :param tag: an existing snapshot's name.
    :raises DriverError: no such snapshot.
    Not implemented: "driver 'x' does not support snapshots".
    """


@_spec("snapshots", unsupported("snapshots"))
def delete_snapshot(tag: str) -> None:
    """Delete snapshot *tag*, running or stopped.

    :param tag: an existing snapshot's name.
    :raises DriverError: no such snapshot.
    Not implemented: "driver 'x' does not support snapshots".
    """


@_spec("snapshots", unsupported("snapshots"))
def list_snapshots() -> str:
    """The snapshots, as text for the user.

    :returns: a table whose header line is ``ID TAG VM SIZE DATE VM CLOCK``,
        then one line per snapshot (``lima snapshot list -q`` prints column 2
        and requires the header's column 2 to be ``TAG``); "" when there are none.
    Not implemented: "driver 'x' does not support snapshots".
    """


# -- GuestAgent -------------------------------------------------------------------------


@_spec("guest agent", default(lambda host: host.default_forward_guest_agent()))
def forward_guest_agent() -> bool:
    """True: the host agent forwards ``ga.sock`` from the guest over SSH.

    False: the driver supplies the connection through ``guest_agent_conn``.
    Not implemented: True when ``info()`` has no vsock port and no virtio port.
    """


@_spec("guest agent", NOOP)
def guest_agent_conn() -> Any:
    """A direct connection to the guest agent, or None to dial ``ga.sock``.

    :returns: None, or ``(sock, kind)`` with a connected socket object and
        ``kind`` "unix" or "vsock". An external driver's connection is bridged
        to ``<instance dir>/ga.sock`` for the host.
    Not implemented: None.
    """


# -- SSH ------------------------------------------------------------------------------------


@_spec("ssh", default(lambda _host: "127.0.0.1"))
def ssh_address() -> str:
    """The host or IP address to SSH to.

    Called after ``start`` only when ``info().features.dynamic_ssh_address``.
    Not implemented: "127.0.0.1".
    """


@_spec("ssh", NOOP)
def additional_setup_for_ssh() -> None:
    """Called right after ``start`` returns, before the first SSH attempt.

    May block until SSH can work (vz waits for its vsock forwarder).
    Not implemented: nothing to do.
    """


# -- lima-core extension ------------------------------------------------------------------


@_spec("host", NOOP)
def check_host() -> None:
    """Say whether this driver can run on this host at all (lima-core extension).

    Called by ``lima drivers list`` without an instance; ``validate`` should
    make the same check.

    :raises HostUnsupported: one sentence naming what the host lacks, e.g.
        "vz needs macOS 13 or later; this host runs Linux".
    Not implemented: the driver claims every host.
    """


# -- lima-core extension: suspend and resume -------------------------------------------------


@_spec("suspend", unsupported("suspend"))
def suspend() -> int:
    """Save the running VM's whole state into the instance directory, then end the VM (lima-core extension).

    Called by the host agent while the VM runs, once the guest is ready for
    it: lima-core has already synced the guest's file systems and unmounted
    its shared directories (9p, virtiofs), and remounts them after
    ``resume``. Return when the state is on disk and the VM process has ended;
    the start handle then closes as for any end of the VM, and the host agent
    does not call ``stop``. The disk must not change from then until
    ``resume``: a driver refuses what would change it (snapshots, resizing).

    :returns: the size in bytes of the saved state, for the user (0 if unknown).
    :raises DriverError: the state could not be saved. The VM must then still
        run as before (the host remounts the shares); say why.
    Not implemented: ``lima suspend`` says "driver 'x' does not support suspend".
    """


@_spec("suspend", unsupported("suspend"))
def resume() -> StartHandle:
    """Start the VM from the state ``suspend`` saved, instead of booting it (lima-core extension).

    Called by the host agent in place of ``start`` when the instance is
    suspended: cidata is not regenerated (the guest still has it mounted), and
    ``validate``, ``create`` and ``create_disk`` are not called (the disk must
    stay as it was saved). ``additional_setup_for_ssh`` and the rest of the
    start path follow as after ``start``; the SSH port may differ from the one
    the VM had (``instance.ssh_local_port``).

    :returns: a :class:`~lima_core.starthandle.StartHandle`, as ``start``'s.
        Once the VM runs from the state, remove the saved state: it no longer
        matches the disk.
    :raises StartFailed: the VM could not be restored. Leave the saved state
        and the disk exactly as they were, and no VM process behind, so the
        user can try again or discard the state with ``lima stop``.
    Not implemented: "driver 'x' does not support suspend".
    """


#: The hook names in declaration order.
HOOKS: tuple[str, ...] = tuple(FALLBACKS)
