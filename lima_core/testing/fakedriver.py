"""A complete driver whose "VM" is a real child process, for tests.

It implements every hook except ``run_gui`` (so the GUI capability reads as
unsupported), keeps all its state in the instance directory (so ``stop``
works from any process), and runs the same way in-process and as an external
executable. Its behaviour is steered from lima.yaml, under ``vmOpts.fake``:

``invalid: "why"``       validate raises ValidationError("why")
``failStart: "why"``     start raises StartFailed("why")
``startErrors: [..]``    errors reported on the start stream once started
``exitAfter: seconds``   the VM process exits by itself after that long
``ignoreTerm: true``     the VM process ignores SIGTERM (stop must kill it)
``hangValidate: seconds`` validate sleeps that long first (a driver that stops answering)
``hangIn: {hook: seconds}`` that hook sleeps that long first (any hook called after configure, and
                         inspect_status), having touched ``fake.hanging.<hook>`` in the instance directory
``dieIn: hook``          the driver process SIGKILLs itself when that hook runs (``start``: once
                         the VM process is up, so the VM is orphaned). External only: refused
                         in-process, where it would kill the CLI or the host agent.
``dynamicSSHAddress: true`` info reports dynamic_ssh_address, so the host agent calls ssh_address
``imageFormats: [..]``   info's supported_image_formats (default: raw, qcow2)

``additionalDisks`` are locked to the instance while its fake VM runs, as the qemu driver locks them.

``failSuspend: "why"``   suspend raises DriverError("why"), the VM running on
``failResume: "why"``    resume raises StartFailed("why"), the saved state kept

suspend asks the VM process to save its "memory" (see :mod:`.fakevm`) to
``fake.savedstate``; resume starts a VM process from it; stop with no VM
running discards it, and so does a start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .. import disks, filenames, pidfile, processes
from ..errors import ConfigError, DriverError, NoDisplay, StartFailed, ValidationError
from ..hookspecs import hookimpl
from ..limatype import DriverFeatures, Info, Instance
from ..starthandle import StartHandle
from .fakevm import RUNNING, SAVED_STATE

NAME = "fake"
STOP_TIMEOUT = 10.0
SNAPSHOT_DIR = "fake-snapshots"
IDENTIFIER = "fake-identifier"
VM_MODULE = "lima_core.testing.fakevm"


class FakeDriver:
    """See the module docstring."""

    name = NAME

    def __init__(self) -> None:
        self.instance: Instance | None = None
        self.display_password = ""

    # -- helpers --------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        if self.instance is None:
            raise DriverError(f"driver {self.name!r} was not configured")
        return Path(self.instance.dir)

    def _opts(self) -> dict:
        assert self.instance is not None and self.instance.config is not None
        return self.instance.config.vm_opts_for(self.name)

    @property
    def _pid_path(self) -> Path:
        return self.dir / filenames.pid_file(self.name)

    def _fault(self, hook: str) -> None:
        """Apply ``hangIn`` and ``dieIn`` for *hook* (nothing before configure: no lima.yaml yet)."""
        if self.instance is None or self.instance.config is None:
            return
        opts = self._opts()
        _hang(self.instance.dir, opts, hook)
        if opts.get("dieIn") == hook:
            _die(hook)

    # -- Info and Configure ---------------------------------------------------------------

    @hookimpl
    def info(self) -> Info:
        self._fault("info")
        opts = self._opts() if self.instance and self.instance.config else {}
        formats = list(opts.get("imageFormats", ["raw", "qcow2"]))
        return Info(name=self.name, instance_dir=self.instance.dir if self.instance else "",
                    features=DriverFeatures(supported_image_formats=formats,
                                            dynamic_ssh_address=bool(opts.get("dynamicSSHAddress"))))

    @hookimpl
    def configure(self, instance: Instance) -> None:
        if instance.config is None:
            raise ConfigError("the instance has no configuration")
        if instance.config.vm_type is None:
            instance.config.vm_type = self.name
        instance.config.mount_type = instance.config.mount_type or "reverse-sshfs"
        self.instance = instance
        opts = self._opts()
        if not isinstance(opts.get("startErrors", []), list):
            raise ConfigError("vmOpts.fake.startErrors must be a list of strings")
        if not isinstance(opts.get("hangIn", {}), dict):
            raise ConfigError("vmOpts.fake.hangIn must map hook names to seconds")
        if opts.get("dieIn") and not _serving():
            raise ConfigError("vmOpts.fake.dieIn needs the external fake driver (lima-driver-fake): "
                              "in-process it would kill lima itself")
        self._fault("configure")

    @hookimpl
    def validate(self) -> None:
        self._fault("validate")
        time.sleep(float(self._opts().get("hangValidate", 0)))
        why = self._opts().get("invalid")
        if why:
            raise ValidationError(str(why))

    @hookimpl
    def check_host(self) -> None:
        return None

    # -- Lifecycle ------------------------------------------------------------------------

    @hookimpl
    def create(self) -> None:
        self._fault("create")
        ident = self.dir / IDENTIFIER
        if not ident.exists() or not ident.read_text().strip():
            ident.write_text(f"{os.urandom(8).hex()}\n")

    @hookimpl
    def create_disk(self) -> None:
        self._fault("create_disk")
        image, disk = self.dir / filenames.IMAGE, self.dir / filenames.DISK
        if not disk.exists() and image.exists():
            image.rename(disk)

    @hookimpl
    def start(self) -> StartHandle:
        opts = self._opts()
        _hang(str(self.dir), opts, "start")
        if opts.get("failStart"):
            raise StartFailed(str(opts["failStart"]))
        if pidfile.read(self._pid_path, expect=VM_MODULE).alive:
            raise StartFailed(f"the fake VM of {self.dir.name} is already running")
        (self.dir / SAVED_STATE).unlink(missing_ok=True)  # a boot makes any saved state stale
        return self._launch("start")

    def _launch(self, hook: str, *extra: str) -> StartHandle:
        opts = self._opts()
        assert self.instance is not None and self.instance.config is not None
        disks.attach(list(self.instance.config.additional_disks or []), self.dir)
        args = [sys.executable, "-m", VM_MODULE, str(self.dir), *extra]
        if opts.get("exitAfter") is not None:
            args += ["--exit-after", str(opts["exitAfter"])]
        if opts.get("ignoreTerm"):
            args.append("--ignore-term")
        with open(self.dir / "fakevm.log", "ab") as log:
            proc = pidfile.spawn(self._pid_path, args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True)
        if opts.get("dieIn") == hook:
            _die(hook)
        # "Boot has begun" once the VM process is up and handles SIGTERM.
        marker = self.dir / RUNNING
        deadline = time.monotonic() + 10
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        handle = StartHandle.for_process(proc, "fake VM", on_cancel=lambda: processes.kill(proc))
        for err in opts.get("startErrors", []):
            handle.report(str(err))
        return handle

    @hookimpl
    def stop(self) -> None:
        self._fault("stop")
        proc = pidfile.read(self._pid_path, expect=VM_MODULE).process
        if proc is not None:
            processes.terminate(proc, STOP_TIMEOUT)
        else:
            (self.dir / SAVED_STATE).unlink(missing_ok=True)  # suspended: stopping discards the saved state
        pidfile.remove(self._pid_path)
        disks.unlock_all(self.dir)

    # -- suspend ----------------------------------------------------------------------------

    @hookimpl
    def suspend(self) -> int:
        self._fault("suspend")
        why = self._opts().get("failSuspend")
        if why:
            raise DriverError(f"cannot save the fake VM: {why}")
        proc = pidfile.read(self._pid_path, expect=VM_MODULE).process
        if proc is None:
            raise DriverError(f"the fake VM of {self.dir.name} is not running")
        state = self.dir / SAVED_STATE
        state.unlink(missing_ok=True)
        proc.send_signal(signal.SIGUSR1)
        if not processes.wait_exit(proc, STOP_TIMEOUT) or not state.exists():
            raise DriverError(f"the fake VM of {self.dir.name} did not save its state")
        pidfile.remove(self._pid_path)
        return state.stat().st_size

    @hookimpl
    def resume(self) -> StartHandle:
        self._fault("resume")
        why = self._opts().get("failResume")
        if why:
            raise StartFailed(f"cannot restore the fake VM: {why}")
        state = self.dir / SAVED_STATE
        if not state.exists():
            raise StartFailed(f"the fake VM of {self.dir.name} has no saved state ({state})")
        if pidfile.read(self._pid_path, expect=VM_MODULE).alive:
            raise StartFailed(f"the fake VM of {self.dir.name} is already running")
        handle = self._launch("resume", "--restore", str(state))
        if not (self.dir / RUNNING).exists():
            handle.cancel()
            pidfile.remove(self._pid_path)
            raise StartFailed(f"the fake VM of {self.dir.name} did not come up from {state}; see fakevm.log")
        state.unlink()  # the VM runs from it: it is spent
        return handle

    @hookimpl
    def delete(self) -> None:
        self._fault("delete")

    @hookimpl
    def inspect_status(self, instance: Instance) -> str:
        if instance.config is not None:
            _hang(instance.dir, instance.config.vm_opts_for(self.name), "inspect_status")
        return ""

    @hookimpl
    def boot_scripts(self) -> dict[str, bytes]:
        self._fault("boot_scripts")
        return {"boot.Linux/10-fake.sh": b"#!/bin/sh\necho fake driver boot script\n"}

    # -- display --------------------------------------------------------------------------

    @hookimpl
    def change_display_password(self, password: str) -> None:
        self.display_password = password

    @hookimpl
    def display_connection(self) -> str:
        return "5900"

    @hookimpl
    def capture_screenshot(self, format: str) -> bytes:
        raise NoDisplay(f"the {self.name} VM has no display")

    # -- snapshots ------------------------------------------------------------------------

    def _snapshot(self, tag: str) -> Path:
        if not tag or "/" in tag:
            raise DriverError(f"invalid snapshot tag {tag!r}")
        return self.dir / SNAPSHOT_DIR / tag

    @hookimpl
    def create_snapshot(self, tag: str) -> None:
        self._fault("create_snapshot")
        path = self._snapshot(tag)
        if path.exists():
            raise DriverError(f"snapshot {tag!r} already exists")
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{time.time()}\n")

    @hookimpl
    def apply_snapshot(self, tag: str) -> None:
        if not self._snapshot(tag).exists():
            raise DriverError(f"snapshot {tag!r} not found")

    @hookimpl
    def delete_snapshot(self, tag: str) -> None:
        path = self._snapshot(tag)
        if not path.exists():
            raise DriverError(f"snapshot {tag!r} not found")
        path.unlink()

    @hookimpl
    def list_snapshots(self) -> str:
        snap_dir = self.dir / SNAPSHOT_DIR
        tags = sorted(p.name for p in snap_dir.iterdir()) if snap_dir.exists() else []
        lines = ["ID        TAG               VM SIZE                DATE     VM CLOCK"]
        lines += [f"{i:<9} {tag:<17} 0 B 1970-01-01 00:00:00 00:00:00.000" for i, tag in enumerate(tags, 1)]
        return "\n".join(lines)

    # -- guest agent and SSH ----------------------------------------------------------------

    @hookimpl
    def guest_agent_conn(self) -> None:
        return None

    @hookimpl
    def ssh_address(self) -> str:
        self._fault("ssh_address")
        return "127.0.0.1"

    @hookimpl
    def additional_setup_for_ssh(self) -> None:
        self._fault("additional_setup_for_ssh")


def _hang(inst_dir: str, opts: dict, hook: str) -> None:
    hang = opts.get("hangIn")
    if isinstance(hang, dict) and hook in hang:
        (Path(inst_dir) / f"fake.hanging.{hook}").touch()
        time.sleep(float(hang[hook]))


def _die(hook: str) -> None:
    print(f"fake driver: dying in {hook} (vmOpts.fake.dieIn)", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def _serving() -> bool:
    """True in a ``lima-driver-*`` executable (the external driver), where dying kills only the driver."""
    return filenames.driver_name(sys.argv[0] if sys.argv else "") is not None


def main() -> None:
    """The ``lima-driver-fake`` executable."""
    from ..external import serve

    raise SystemExit(serve(FakeDriver))
