"""The host's view of an external driver: a plugin whose hookimpls forward over gRPC.

The shim class is generated from the hookspecs and the wire table: one
forwarding hookimpl per hook the remote driver implements (a lima-core server
lists them; a plain Lima driver implements every Lima method). Registered on a
:class:`~lima_core.host.DriverHost` like any internal driver, it gives the same
results, the same errors and the same start stream.

Each connection sends a ``lima-session`` id with every call, so a lima-core
server keeps one driver object per client (the host agent's ``configure`` is
not overwritten by a CLI command's). A Lima server ignores it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from .. import hookspecs, processes
from ..errors import DriverError, DriverTimeout, DriverUnavailable, LimaError, StartFailed
from ..host import DriverHost
from ..limatype import Instance
from ..processes import describe_exit, tail
from ..protocol import payload, rpc
from ..starthandle import StartHandle
from . import supervisor

INSPECT_STATUS_TIMEOUT = 10.0
#: The hooks of Lima's Driver interface: what a plain Lima driver serves.
LIMA_HOOKS = frozenset(h for h in hookspecs.HOOKS if h in rpc.WIRE and not rpc.WIRE[h].extension) | {
    "inspect_status"}


class Connection:
    """A gRPC channel to one driver server, with this client's session id."""

    def __init__(self, server: supervisor.Server) -> None:
        self.server = server
        self.name = server.name
        self._dial = _DialPath(server.socket)
        self._channel = rpc.channel(self._dial.path)
        self._driver, self._ext = rpc.stubs(self._channel)
        #: hook -> (the stub's method, the hook's Wire), for the unary hooks
        self._unary = {hook: (getattr(self._ext if wire.extension else self._driver, wire.rpc), wire)
                       for hook, wire in rpc.WIRE.items() if not wire.streaming}
        self._metadata = ((rpc.SESSION_KEY, uuid.uuid4().hex),)
        self._watchdog = _Watchdog(server, self._channel)
        #: the calls without deadline in flight, which :meth:`interrupt` cancels
        self._in_flight: set[Any] = set()
        self._in_flight_lock = threading.Lock()

    def close(self) -> None:
        self._watchdog.close()
        self._channel.close()
        self._dial.close()

    def _error(self, exc: grpc.RpcError, hook: str) -> LimaError:
        """The LimaError for a failed call; a driver process that died says so, and how."""
        err = rpc.error_from_rpc(exc, self.name, hook)
        if isinstance(err, DriverUnavailable):
            how = self.server.ended()
            if how is not None:
                return DriverUnavailable(f"the {self.name} driver process {how} during {hook.replace('_', ' ')}; "
                                         f"see {self.server.log}")
        return err

    def protocol_info(self) -> Any | None:
        """The server's ProtocolInfo, or None for a plain Lima driver."""
        try:
            return self._ext.GetProtocolInfo(rpc.Empty(), timeout=10, metadata=self._metadata)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise self._error(exc, "protocol_info") from None

    def interrupt(self) -> None:
        """Cancel the calls without deadline in flight (from another thread than theirs): each raises
        :class:`DriverError` in its caller, and the driver is told through gRPC's cancellation."""
        with self._in_flight_lock:
            calls = list(self._in_flight)
        for call in calls:
            call.cancel()

    @contextlib.contextmanager
    def _interruptible(self, call: Any) -> Iterator[None]:
        with self._in_flight_lock:
            self._in_flight.add(call)
        try:
            yield
        except BaseException:  # Ctrl-C, or a failure: the driver stops working for us
            call.cancel()
            raise
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(call)

    def call(self, hook: str, kwargs: dict[str, Any]) -> Any:
        rpc, wire = self._unary[hook]
        try:
            # grpc lets signal handlers run while the caller waits, so Ctrl-C raises
            # KeyboardInterrupt here and the call is cancelled. A call without deadline
            # (create_disk, stop, ...) may take minutes: it is made as a future, which
            # interrupt() can cancel from another thread.
            if wire.deadline is not None:
                response = rpc(wire.request(kwargs), timeout=wire.deadline, metadata=self._metadata)
            else:
                with self._watchdog.watching():
                    future = rpc.future(wire.request(kwargs), metadata=self._metadata)
                    with self._interruptible(future):
                        response = future.result()
        except grpc.FutureCancelledError:
            raise DriverError(f"the call to {hook.replace('_', ' ')} of driver {self.name!r} was interrupted") \
                from None
        except grpc.RpcError as exc:
            if self._watchdog.gave_up:
                raise DriverUnavailable(f"the {self.name} driver process {self._watchdog.gave_up} during "
                                        f"{hook.replace('_', ' ')}") from None
            raise self._error(exc, hook) from None
        return wire.result(response)

    def stream(self, hook: str) -> StartHandle:
        """Call a hook whose result is a start handle (start, resume): the handle follows its stream."""
        wire = rpc.WIRE[hook]
        call = getattr(self._ext if wire.extension else self._driver, wire.rpc)(rpc.Empty(), metadata=self._metadata)
        messages: queue.Queue[Any] = queue.Queue()

        def pump() -> None:
            try:
                for msg in call:
                    messages.put(msg)
                messages.put(None)
            except grpc.RpcError as exc:
                messages.put(exc)

        threading.Thread(target=pump, name=f"start-stream-{self.name}", daemon=True).start()
        with self._interruptible(call):  # cancelled also when it fails
            first = _next(messages)
            if isinstance(first, grpc.RpcError):
                raise self._error(first, hook)
            if first is None:
                raise StartFailed(f"driver {self.name!r} ended the {hook} stream before the VM started")
            if not first.success:
                after = _next(messages)  # our servers follow the message with a typed status
                if isinstance(after, grpc.RpcError):
                    err = rpc.error_from_rpc(after, self.name, hook)
                    raise err if type(err) is not DriverError else StartFailed(first.error)
                raise StartFailed(first.error)
        handle = StartHandle(on_cancel=call.cancel)
        threading.Thread(target=self._follow, args=(messages, handle, hook), name=f"{hook}-handle-{self.name}",
                         daemon=True).start()
        return handle

    def _follow(self, messages: queue.Queue[Any], handle: StartHandle, hook: str) -> None:
        """Copy the rest of the stream onto *handle*; a dying stream is reported, not just logged."""
        while True:
            msg = messages.get()
            if msg is None:
                handle.report(f"driver {self.name!r} ended the {hook} stream without saying the VM stopped")
                break
            if isinstance(msg, grpc.RpcError):
                if msg.code() != grpc.StatusCode.CANCELLED:
                    how = self.server.ended()
                    why = (f"the {self.name} driver process {how}" if how else
                           f"{msg.code().name}: {msg.details()}; the driver process may have died")
                    handle.report(f"lost the {hook} stream of driver {self.name!r} ({why}); see {self.server.log}")
                break
            if msg.success:
                break
            handle.report(msg.error)
        handle.close()


class _DialPath:
    """A path gRPC can dial for *sock*: itself, or, if it holds a comma (which gRPC reads as a list of
    addresses; LIMA_HOME may hold one), the same socket reached through this process's descriptor of its
    directory (``/proc/self/fd/N/name``), else through a symlink in a private temporary directory."""

    def __init__(self, sock: Path) -> None:
        self.path = str(sock)
        self._fd: int | None = None
        self._tmp: str | None = None
        if "," not in self.path:
            return
        proc_fd = Path("/proc/self/fd")
        if proc_fd.is_dir():
            self._fd = os.open(sock.parent, os.O_RDONLY | getattr(os, "O_PATH", 0) | os.O_DIRECTORY | os.O_CLOEXEC)
            self.path = f"{proc_fd}/{self._fd}/{sock.name}"
        else:
            self._tmp = tempfile.mkdtemp(prefix="lima-sock-")
            self.path = os.path.join(self._tmp, "s")
            os.symlink(sock, self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class _Watchdog:
    """Gives up on a driver process frozen by a signal while a call without deadline waits on it.

    Such a call (``stop`` may take minutes) would wait forever on a driver
    stopped by SIGSTOP or held by a debugger. While one is in flight, a
    thread looks at the process every quarter second; once it has been
    frozen for ``processes.FROZEN_GRACE`` seconds the channel is closed,
    which ends the call, and :attr:`gave_up` says why. The thread is started
    by the first such call and ends with the connection.
    """

    def __init__(self, server: supervisor.Server, channel: grpc.Channel) -> None:
        self._server = server
        self._channel = channel
        self._lock = threading.Lock()
        self._in_flight = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        #: why the channel was closed ("is frozen (stopped by a signal); gave up after 2 s"), else ""
        self.gave_up = ""

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name=f"watchdog-{self._server.name}",
                                                daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        self._closed.set()

    def _watch(self) -> None:
        frozen_since: float | None = None
        while not self._closed.wait(_SLICE):
            proc = self._server.process or self._server.reused
            if not self._in_flight or proc is None or not processes.frozen(proc):
                frozen_since = None
                continue
            now = time.monotonic()
            frozen_since = frozen_since or now
            if now - frozen_since >= processes.FROZEN_GRACE:
                self.gave_up = (f"(pid {proc.pid}) is frozen (stopped by a signal); gave up on it after "
                                f"{processes.FROZEN_GRACE:g} s")
                self._channel.close()
                return


def _next(messages: queue.Queue[Any]) -> Any:
    while True:
        try:
            return messages.get(timeout=_SLICE)
        except queue.Empty:
            continue


_SLICE = 0.25


def inspect_status(path: str, instance: Instance) -> str:
    """Lima's one-shot ``--inspect-status`` protocol; fills *instance* from the reply."""
    try:
        proc = subprocess.run([path, "--inspect-status"], input=payload.encode_inspect(instance),
                              capture_output=True, timeout=INSPECT_STATUS_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DriverTimeout(f"{path} --inspect-status did not answer within {INSPECT_STATUS_TIMEOUT:g} s") from None
    except OSError as exc:
        raise DriverError(f"cannot run {path} --inspect-status: {exc.strerror}") from None
    if proc.returncode != 0:
        err = tail(proc.stderr.decode(errors="replace"), 1)
        raise DriverError(f"{path} --inspect-status {describe_exit(proc.returncode)}" + (f": {err}" if err else ""))
    instance.replace_with(_inspect_reply(proc.stdout))
    return instance.status


def _inspect_reply(stdout: bytes) -> Instance:
    """The reply on a driver's stdout. Lines before it (a library printing on import, a debug print) are
    skipped: the reply is the last line that decodes."""
    try:
        return payload.decode_inspect(stdout)
    except DriverError as exc:
        for line in reversed(stdout.splitlines()):
            if line.strip().startswith(b'"'):
                try:
                    return payload.decode_inspect(line)
                except DriverError:
                    continue
        raise exc from None


# -- the shim, generated from the hookspecs -------------------------------------------------------------------


class ExternalDriver:
    """The driver object registered for an external driver: one forwarding hookimpl per hook it serves.

    The hookimpls are made here from the hookspecs, as attributes of the
    object (plain functions, not methods). pluggy passes an implementation
    the arguments it names, and reads the names from the function it finds
    by following ``__wrapped__`` (pluggy 1.7 unwraps and reads the code's
    names; 1.5 and 1.6 use :func:`inspect.signature`, which unwraps too):
    each forwarding function wraps its spec, so it receives exactly the
    spec's arguments, in the spec's order. ``tests/core/test_shim.py``
    checks this against the installed pluggy.
    """

    def __init__(self, connection: Connection, path: str, hooks: frozenset[str]) -> None:
        self._connection = connection
        self._path = path
        for hook in hookspecs.HOOKS:
            if hook in hooks:
                setattr(self, hook, self._forwarding_impl(hook))

    def close(self) -> None:
        self._connection.close()

    def interrupt(self) -> None:
        self._connection.interrupt()

    def _forwarding_impl(self, hook: str) -> Any:
        spec = getattr(hookspecs, hook)
        connection = self._connection
        if hook in rpc.WIRE and rpc.WIRE[hook].streaming:
            def forward(*_args: Any) -> Any:
                return connection.stream(hook)
        elif hook == "inspect_status":
            path = self._path

            def forward(*args: Any) -> Any:
                return inspect_status(path, *args)
        else:
            params = list(inspect.signature(spec).parameters)

            def forward(*args: Any) -> Any:
                return connection.call(hook, dict(zip(params, args, strict=True)))

        # __name__, __qualname__ and __wrapped__ from the spec; not its __dict__ (its hookspec marker).
        functools.update_wrapper(forward, spec, assigned=("__module__", "__name__", "__qualname__"), updated=())
        forward.__doc__ = f"Forward {hook} to the external driver."
        return hookspecs.hookimpl(forward)


def connect(path: str, name: str, instance_dir: Path) -> DriverHost:
    """Reach (or spawn) the external driver *name* serving *instance_dir*."""
    server = supervisor.ensure_server(path, name, instance_dir)
    connection = Connection(server)
    try:
        pinfo = connection.protocol_info()
        hooks = frozenset(pinfo.hooks) if pinfo is not None else LIMA_HOOKS
        unknown = hooks - set(hookspecs.HOOKS)
        return DriverHost(ExternalDriver(connection, path, hooks - unknown), name, location=path)
    except LimaError:
        connection.close()
        raise
