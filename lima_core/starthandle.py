"""What ``start`` returns: Lima's ``chan error``, made explicit.

A driver's ``start`` hook returns once boot has begun, handing back a
:class:`StartHandle`. The driver reports each runtime error with
:meth:`~StartHandle.report` and calls :meth:`~StartHandle.close` when the VM
has ended. The host waits on it with :meth:`~StartHandle.next` or iterates it.
As in Lima, the host agent takes the first event as "the driver stopped".

The host may :meth:`~StartHandle.cancel` the handle when it goes away without a
``stop`` (Lima binds the VM to the Start call's context); a driver that wants
to react installs ``on_cancel``.
"""

from __future__ import annotations

import dataclasses
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator

from .processes import describe_exit


@dataclasses.dataclass(frozen=True)
class StartEvent:
    """One value on the channel: a runtime error, or the end (``error is None``)."""

    error: str | None = None

    @property
    def ended(self) -> bool:
        return self.error is None


class StartHandle:
    """A thread-safe channel of runtime errors that closes when the VM ends."""

    def __init__(self, on_cancel: Callable[[], None] | None = None) -> None:
        self._events: queue.Queue[StartEvent] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._cancelled = False
        self.on_cancel = on_cancel

    # -- the driver's side ------------------------------------------------------------

    def report(self, error: str | BaseException) -> None:
        """Send one runtime error. Ignored once the handle is closed."""
        with self._lock:
            if not self._closed:
                self._events.put(StartEvent(str(error) or type(error).__name__))

    def close(self) -> None:
        """The VM has ended. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._events.put(StartEvent(None))

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the host's side --------------------------------------------------------------

    def next(self, timeout: float | None = None) -> StartEvent | None:
        """The next event, or None if none came within *timeout* seconds."""
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if event.ended:
            self._events.put(event)  # the end is sticky: every later call sees it
        return event

    def __iter__(self) -> Iterator[StartEvent]:
        """Every event up to and including the end."""
        while True:
            event = self.next()
            assert event is not None
            yield event
            if event.ended:
                return

    def cancel(self) -> None:
        """The host is going away without Stop: let the driver end the VM."""
        with self._lock:
            if self._cancelled or self._closed:
                return
            self._cancelled = True
        if self.on_cancel is not None:
            self.on_cancel()

    # -- helpers for drivers ----------------------------------------------------------

    @classmethod
    def for_process(cls, proc: subprocess.Popen, what: str, on_cancel: Callable[[], None] | None = None) -> StartHandle:
        """A handle that reports *proc*'s exit: an error if non-zero, then the end."""
        handle = cls(on_cancel=on_cancel)

        def wait() -> None:
            code = proc.wait()
            if code != 0:
                handle.report(f"{what} {describe_exit(code)}")
            handle.close()

        threading.Thread(target=wait, name=f"wait-{what}", daemon=True).start()
        return handle
