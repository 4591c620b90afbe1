"""The driver side of an external driver: ``serve(driver)`` and its gRPC servicer.

``serve`` turns any driver class into an executable with Lima's flags:

``--inst-dir DIR``
    serve on ``DIR/<name>.drv.sock`` (mode 0600) until SIGTERM or SIGINT,
    then stop gracefully and remove the socket. Logs go to stderr.
``--inspect-status``
    read one JSON string holding base64 of the instance JSON from stdin,
    write the instance back in the same form with its status filled, exit.
``--inspect-status-batch`` (lima-core's)
    the same for many instances, one payload per line in and one line out
    for each, in order: the instance, or ``{"error": "message"}`` for one
    that failed. ``lima list`` runs a driver once for all its instances this
    way; a driver that does not know the flag (exit status 2) is run once
    per instance with ``--inspect-status``.

Flags are read as Go's ``flag`` package reads them: ``-x`` or ``--x``,
``--x=v`` or ``--x v``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib
import inspect
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from .. import filenames
from ..errors import DriverLoadError, LimaError
from ..host import DriverHost
from ..protocol import payload, rpc

log = logging.getLogger("lima_core.driver")

#: Sessions kept per server; the least recently used without a running VM go first.
MAX_SESSIONS = 32
#: Seconds in-flight unary calls get to finish on SIGTERM.
SHUTDOWN_GRACE = 5.0

DriverFactory = Callable[[], object]
_CHECKED = ("info", "configure", "boot_scripts")


class _Sessions:
    """One DriverHost per client session; a plain Lima client has the "" session."""

    def __init__(self, factory: DriverFactory | None, shared: object | None, name: str | None) -> None:
        self._factory = factory
        self._name = name
        self._hosts: collections.OrderedDict[str, DriverHost] = collections.OrderedDict()
        self._busy: set[str] = set()  # sessions with a live start stream
        self._lock = threading.Lock()
        self._shared = DriverHost(shared, name) if shared is not None else None
        self.template = self._shared or DriverHost(factory(), name)  # type: ignore[misc]
        self.name = self.template.name

    def get(self, context: grpc.ServicerContext) -> tuple[str, DriverHost]:
        session = dict(context.invocation_metadata()).get(rpc.SESSION_KEY, "")
        if self._shared is not None:
            return session, self._shared
        with self._lock:
            host = self._hosts.get(session)
            if host is None:
                host = self.template if not self._hosts else DriverHost(self._factory(), self.name)  # type: ignore[misc]
                self._hosts[session] = host
                self._evict()
            self._hosts.move_to_end(session)
            return session, host

    def _evict(self) -> None:
        for session in list(self._hosts):
            if len(self._hosts) <= MAX_SESSIONS:
                return
            if session not in self._busy:
                del self._hosts[session]

    def busy(self, session: str, on: bool) -> None:
        with self._lock:
            (self._busy.add if on else self._busy.discard)(session)


class _Servicer:
    """Answers every RPC of service Driver (and lima-core's extensions) from the table."""

    def __init__(self, sessions: _Sessions, instance_dir: Path, shutdown: threading.Event | None = None) -> None:
        self.sessions = sessions
        self.instance_dir = instance_dir
        #: set when the server should exit (its VM's host went away)
        self.shutdown = shutdown or threading.Event()

    def unary(self, hook: str) -> Callable[[Any, grpc.ServicerContext], Any]:
        wire = rpc.WIRE[hook]

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            _session, host = self.sessions.get(context)
            try:
                kwargs = wire.arguments(request)
                # Hooks whose results the host checks go through its typed methods.
                method = getattr(host, hook) if hook in _CHECKED else functools.partial(host.call, hook)
                result = method(**kwargs)
                if hook == "guest_agent_conn":
                    self._bridge_guest_agent(result)
                    return rpc.Empty()
                return wire.response(result)
            except Exception as exc:  # every failure becomes a typed status
                if not isinstance(exc, LimaError) or exc.__cause__ is not None:  # a crash: keep its traceback
                    log.exception("%s failed", hook)
                rpc.abort_with(context, exc)
                raise AssertionError("unreachable") from exc

        return handle

    def stream(self, hook: str) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        """The handler of a hook that returns a start handle (start, resume): its events as a stream."""

        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            return self._stream(hook, context)

        return handle

    def _stream(self, hook: str, context: grpc.ServicerContext) -> Iterator[Any]:
        session, host = self.sessions.get(context)
        try:
            handle = getattr(host, hook)()
        except Exception as exc:
            if not isinstance(exc, LimaError) or exc.__cause__ is not None:  # a crash: keep its traceback
                log.exception("%s failed", hook)
            yield rpc.stream_message(hook, str(exc) or type(exc).__name__)
            rpc.abort_with(context, exc)
            return
        # The VM is bound to the stream, as in Lima: a client that goes away
        # without Stop cancels the handle, and the driver ends the VM. The
        # server then has no one to serve and exits too (Lima's lingers).
        def on_done() -> None:
            if not handle.closed:
                log.warning("the host went away without Stop; ending the VM and exiting")
                handle.cancel()
                self.shutdown.set()

        if not context.add_callback(on_done):  # it went away while the driver was starting the VM
            on_done()
            return
        self.sessions.busy(session, True)
        try:
            yield rpc.stream_message(hook)
            while True:
                event = handle.next(timeout=0.5)
                if event is None:
                    if not context.is_active():
                        return
                    continue
                if event.ended:
                    yield rpc.stream_message(hook)
                    return
                yield rpc.stream_message(hook, event.error)
        finally:
            self.sessions.busy(session, False)

    def _bridge_guest_agent(self, result: Any) -> None:
        """Bridge a non-unix connection to a one-shot ``ga.sock`` (Lima's behaviour, minus its leaks)."""
        if result is None:
            return
        conn, kind = result
        if kind == "unix":
            conn.close()
            return
        path = self.instance_dir / filenames.GUEST_AGENT_SOCK
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(1)
        threading.Thread(target=_bridge_once, args=(listener, conn, path), daemon=True).start()

    # -- lima-core extensions ------------------------------------------------------------

    def protocol_info(self, request: Any, context: grpc.ServicerContext) -> Any:
        _session, host = self.sessions.get(context)
        return rpc.protocol_info(self.sessions.name, sorted(host.implemented), "lima-core")


def _bridge_once(listener: socket.socket, conn: Any, path: Path) -> None:
    try:
        client, _ = listener.accept()
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def pump(src: Any, dst: Any) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=pump, args=(conn, client), daemon=True)
    t.start()
    pump(client, conn)
    t.join()
    client.close()
    conn.close()


def _handlers(servicer: _Servicer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The handlers of service Driver and of lima-core's extensions, by RPC name."""
    driver: dict[str, Any] = {}
    extensions: dict[str, Any] = {"GetProtocolInfo": servicer.protocol_info}
    for hook, wire in rpc.WIRE.items():
        handler = servicer.stream(hook) if wire.streaming else servicer.unary(hook)
        (extensions if wire.extension else driver)[wire.rpc] = handler
    return driver, extensions


# -- the executable -------------------------------------------------------------------------


def _parse_flags(argv: list[str]) -> dict[str, Any]:
    """Go ``flag`` semantics for the two flags Lima passes."""
    opts: dict[str, Any] = {"inst-dir": None, "inspect-status": False, "inspect-status-batch": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "-help", "--help"):
            opts["help"] = True
            i += 1
            continue
        if not arg.startswith("-") or arg in ("-", "--"):
            raise _Usage(f"unexpected argument {arg!r}")
        name, eq, value = arg.lstrip("-").partition("=")
        if name in ("inspect-status", "inspect-status-batch"):
            opts[name] = value.lower() not in ("false", "0") if eq else True
        elif name == "inst-dir":
            if not eq:
                i += 1
                if i >= len(argv):
                    raise _Usage("flag needs an argument: -inst-dir")
                value = argv[i]
            opts[name] = value
        else:
            raise _Usage(f"flag provided but not defined: -{name}")
        i += 1
    return opts


class _Usage(Exception):
    pass


USAGE = """usage: {prog} --inst-dir DIR | --inspect-status | --inspect-status-batch

A Lima external VM driver ({name}).
  --inst-dir DIR      serve gRPC on DIR/{name}.drv.sock until SIGTERM or SIGINT
  --inspect-status    read an instance (base64 JSON) on stdin, write it back with its status
  --inspect-status-batch  the same for one instance per line
"""


def serve(driver: object | type | DriverFactory | str, argv: list[str] | None = None) -> int:
    """Run *driver* as a Lima external driver executable; returns the exit code.

    *driver* is a driver class (or zero-argument factory), from which one
    driver object is made per client session; or a driver object, shared by
    every client as Lima's servers do; or ``"module:attribute"`` naming one
    of those, imported here.
    """
    argv = sys.argv if argv is None else argv
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name_hint = filenames.driver_name(argv[0])
    try:
        opts = _parse_flags(argv[1:])
        driver = _load(driver) if isinstance(driver, str) else driver
        factory: DriverFactory | None = (driver if inspect.isclass(driver) or inspect.isfunction(driver)  # type: ignore[assignment]
                                         else None)
        sessions = _Sessions(factory, None if factory is not None else driver, name_hint)
    except _Usage as exc:
        print(f"{os.path.basename(argv[0])}: {exc}\n" + USAGE.format(prog=argv[0], name=name_hint or "driver"),
              file=sys.stderr)
        return 2
    except LimaError as exc:
        print(f"{os.path.basename(argv[0])}: {exc}", file=sys.stderr)
        return 1
    if opts.get("help"):
        print(USAGE.format(prog=argv[0], name=sessions.name), end="")
        return 0
    if opts["inspect-status-batch"]:
        return _inspect_status_batch(sessions.template)
    if opts["inspect-status"]:
        return _inspect_status(sessions.template)
    if not opts["inst-dir"]:
        print(f"{os.path.basename(argv[0])}: --inst-dir is required to serve\n"
              + USAGE.format(prog=argv[0], name=sessions.name), file=sys.stderr)
        return 2
    return _serve(sessions, Path(opts["inst-dir"]).absolute())


def _inspect_status(host: DriverHost) -> int:
    try:
        instance = payload.decode_inspect(sys.stdin.buffer.read())
        instance.status = host.inspect_status(instance)
    except LimaError as exc:
        print(f"inspect-status: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(payload.encode_inspect(instance))
    sys.stdout.flush()
    return 0


def _inspect_status_batch(host: DriverHost) -> int:
    out = []
    for line in sys.stdin.buffer.read().splitlines():
        if not line.strip():
            continue
        try:
            instance = payload.decode_inspect(line)
            instance.status = host.inspect_status(instance)
            out.append(payload.encode_inspect(instance))
        except LimaError as exc:
            out.append(json.dumps({"error": exc.message}).encode() + b"\n")
    sys.stdout.buffer.write(b"".join(out))
    sys.stdout.flush()
    return 0


def _serve(sessions: _Sessions, instance_dir: Path) -> int:
    if not instance_dir.is_dir():
        log.error("instance directory %s does not exist", instance_dir)
        return 1
    sock = instance_dir / filenames.driver_socket(sessions.name)
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    executor = futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix=_CALL_THREAD)
    server = grpc.server(executor, options=rpc.SERVER_OPTIONS)
    stop = threading.Event()
    rpc.add_servicers(server, *_handlers(_Servicer(sessions, instance_dir, stop)))
    # Before the socket exists: a host may signal us as soon as it sees it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    old_umask = os.umask(0o177)  # the socket is created 0600
    try:
        port = server.add_insecure_port(rpc.unix_target(str(sock)))
    finally:
        os.umask(old_umask)
    if not port:
        log.error("cannot listen on %s", sock)
        return 1
    server.start()
    log.info("driver %s serving on %s (pid %d)", sessions.name, sock, os.getpid())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("stopping: waiting up to %g s for calls in flight", SHUTDOWN_GRACE)
        server.stop(SHUTDOWN_GRACE).wait()
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
    executor.shutdown(wait=False)
    _leave_hung_calls()
    return 0


_CALL_THREAD = "driver-call"


def _leave_hung_calls() -> None:
    """Exit at once when a hook call still runs after the shutdown grace (a hung driver): the
    interpreter would wait for its thread on the way out, and the host kills the process after
    ``supervisor.STOP_TIMEOUT`` anyway."""
    deadline = time.monotonic() + 1.0
    threads = [t for t in threading.enumerate() if t.name.startswith(_CALL_THREAD)]
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = sum(t.is_alive() for t in threads)
    if hung:
        log.warning("%d call(s) still running after the grace; exiting without them", hung)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def _load(target: str) -> object:
    """The object named by ``"module:attribute"`` (an entry point's value)."""
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name.strip())
        for part in attr.strip().split(".") if attr.strip() else ():
            obj = getattr(obj, part)
    except Exception as exc:  # whatever the driver's import raises: one line, not a traceback
        raise DriverLoadError(f"cannot load driver {target!r}: {type(exc).__name__}: {exc}") from exc
    return obj
