"""A VZVirtualMachine on its own serial dispatch queue.

Virtualization.framework requires every call on a VM to happen on the queue
the VM was created with; completion handlers run there too. :class:`Machine`
makes that queue with ``dispatch_queue_create`` and funnels every call through
``dispatch_sync``; completion handlers only set events, and the caller waits
on those outside the queue (waiting inside would deadlock).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from lima_core.errors import DriverError, DriverTimeout, StartFailed

from . import Bindings
from .configuration import _describe

STATE_NAMES = {0: "stopped", 1: "running", 2: "paused", 3: "error", 4: "starting", 5: "pausing",
               6: "resuming", 7: "stopping", 8: "saving", 9: "restoring"}
STOPPED, RUNNING, PAUSED, ERROR = 0, 1, 2, 3
START_TIMEOUT = 60.0
#: saving or restoring the state writes or reads the whole guest memory
SAVE_TIMEOUT = 600.0
CONNECT_TIMEOUT = 10.0


class Machine:
    """One VM; every method may be called from any thread."""

    def __init__(self, b: Bindings, configuration: Any, label: str) -> None:
        self._b = b
        self._queue = b.libdispatch.dispatch_queue_create(label.encode(), None)
        self.vm = b.Virtualization.VZVirtualMachine.alloc().initWithConfiguration_queue_(configuration, self._queue)

    def on_queue(self, fn: Callable[[], Any]) -> Any:
        """Run *fn* on the VM's queue and return its result (exceptions are re-raised here)."""
        box: list[Any] = []
        failure: list[BaseException] = []

        def block() -> None:
            try:
                box.append(fn())
            except BaseException as exc:  # carried back to the calling thread
                failure.append(exc)

        self._b.libdispatch.dispatch_sync(self._queue, block)
        if failure:
            raise failure[0]
        return box[0] if box else None

    def _wait(self, start: Callable[[Callable[..., None]], None], timeout: float, what: str) -> tuple[Any, ...]:
        done = threading.Event()
        result: list[tuple[Any, ...]] = []

        def handler(*args: Any) -> None:
            result.append(args)
            done.set()

        self.on_queue(lambda: start(handler))
        if not done.wait(timeout):
            raise DriverTimeout(f"{what} did not finish within {timeout:g} s")
        return result[0]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        (error,) = self._wait(self.vm.startWithCompletionHandler_, timeout, "starting the VM")
        if error is not None:
            raise StartFailed(f"Virtualization.framework could not start the VM: {_describe(error)}")

    def state(self) -> int:
        return int(self.on_queue(self.vm.state))

    def state_name(self) -> str:
        state = self.state()
        return STATE_NAMES.get(state, str(state))

    def can_request_stop(self) -> bool:
        return bool(self.on_queue(self.vm.canRequestStop))

    def request_stop(self) -> None:
        """Ask the guest to power off (like pressing the power button)."""
        ok, error = self.on_queue(lambda: self.vm.requestStopWithError_(None))
        if not ok:
            raise DriverError(f"vz could not ask the guest to stop: {_describe(error)}")

    # -- suspend: pause, save, forced stop; restore, resume (save and restore need macOS 14) ----------

    def _call(self, selector: str, what: str, *args: Any, timeout: float = SAVE_TIMEOUT) -> None:
        """Run a completion-handler method of the VM; DriverError with the framework's reason on failure."""
        try:
            method = getattr(self.vm, selector)
        except AttributeError:
            raise DriverError(f"vz cannot {what} here: Virtualization.framework has no {selector} "
                              "(it needs macOS 14 or later)") from None
        (error,) = self._wait(lambda handler: method(*args, handler), timeout, what)
        if error is not None:
            raise DriverError(f"vz could not {what}: {_describe(error)}")

    def validate_save_restore(self) -> None:
        """:raises DriverError: the framework cannot save this VM's configuration (it says why)."""
        try:
            ok, error = self.on_queue(lambda: self.vm.configuration().validateSaveRestoreSupportWithError_(None))
        except AttributeError:
            raise DriverError("vz cannot save a VM here: Virtualization.framework has no "
                              "validateSaveRestoreSupport (it needs macOS 14 or later)") from None
        if not ok:
            raise DriverError(f"vz cannot save this VM: {_describe(error)}")

    def pause(self) -> None:
        self._call("pauseWithCompletionHandler_", "pause the VM")

    def resume(self) -> None:
        self._call("resumeWithCompletionHandler_", "resume the VM")

    def force_stop(self) -> None:
        """End the VM without asking the guest (after its state is saved)."""
        self._call("stopWithCompletionHandler_", "stop the VM")

    def save_state(self, path: str) -> None:
        """Write the paused VM's state to *path*; the VM stays paused."""
        url = self._b.Foundation.NSURL.fileURLWithPath_(path)
        self._call("saveMachineStateToURL_completionHandler_", "save the VM's state", url)

    def restore_state(self, path: str) -> None:
        """Load *path* into this stopped VM, which is then paused."""
        url = self._b.Foundation.NSURL.fileURLWithPath_(path)
        self._call("restoreMachineStateFromURL_completionHandler_", "restore the VM's saved state", url)

    def connect_vsock(self, port: int, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
        """A stream socket connected to the guest's vsock *port*."""
        devices = list(self.on_queue(self.vm.socketDevices) or [])
        if not devices:
            raise DriverError(f"unable to connect to vsock port {port}: the VM has no socket device")
        device = devices[0]
        connection, error = self._wait(lambda h: device.connectToPort_completionHandler_(port, h), timeout,
                                       f"connecting to vsock port {port}")
        if connection is None:
            raise DriverError(f"unable to connect to vsock port {port}: {_describe(error)}")
        fd = os.dup(connection.fileDescriptor())
        self.on_queue(connection.close)
        # macOS has no AF_VSOCK: the descriptor is the host end of a Unix-domain stream socket that the
        # framework relays to the guest's vsock port.
        return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=fd)
