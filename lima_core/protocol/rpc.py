"""The one adapter between driver hooks and the gRPC services of ``proto/*.proto``.

The messages, stubs and servicer bases come from the protoc-generated modules
in ``_gen``. This module maps every hook to its RPC (:data:`WIRE`), converts
arguments and results between plain Python values and messages in both
directions, and maps errors to gRPC statuses and back, so the client shim and
the server are both driven by the same table.

Errors travel as a status whose details are the driver's own message, plus the
trailing metadata ``lima-error-kind`` naming the :class:`LimaError` subclass.
A peer that does not send the metadata (a driver built for Lima) is decoded
from the status code: UNIMPLEMENTED, or the bare message "unimplemented" that
Lima's drivers return, becomes :class:`UnsupportedOperation`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.empty_pb2 import Empty

from .. import errors
from ._gen import driver_pb2 as pb
from ._gen import driver_pb2_grpc as pb_grpc
from ._gen import lima_core_ext_pb2 as ext_pb
from ._gen import lima_core_ext_pb2_grpc as ext_pb_grpc
from .payload import decode_info, decode_instance, encode_info, encode_instance

#: Revision of lima-core's protocol extensions (0 = plain Lima protocol).
PROTOCOL_VERSION = 1
#: Lima's message limit, applied to both directions (Lima's server keeps 4 MiB).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
ERROR_KIND_KEY = "lima-error-kind"
#: Call metadata naming the client, so a lima-core server keeps one driver object per client.
SESSION_KEY = "lima-session"
SERVICE = pb.DESCRIPTOR.services_by_name["Driver"].full_name
EXT_SERVICE = ext_pb.DESCRIPTOR.services_by_name["DriverExtensions"].full_name

_MESSAGE_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
CHANNEL_OPTIONS = _MESSAGE_OPTIONS + [
    # Each channel connects on its own. With gRPC's default global subchannel pool, a new
    # channel to a respawned driver's socket shared the dead driver's subchannel, still in
    # reconnect backoff, and failed at once with the old error.
    ("grpc.use_local_subchannel_pool", 1),
]
SERVER_OPTIONS = _MESSAGE_OPTIONS + [
    # Lima's server keepalive: ping every 10 s, allow client pings as often as 10 s.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 30_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


# -- the hook <-> RPC table ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Wire:
    """How one hook crosses the wire."""

    hook: str
    rpc: str
    #: kwargs -> request message (client side)
    request: Callable[[dict[str, Any]], Any]
    #: request message -> kwargs (server side)
    arguments: Callable[[Any], dict[str, Any]]
    #: result -> response message (server side)
    response: Callable[[Any], Any]
    #: response message -> result (client side)
    result: Callable[[Any], Any]
    #: Lima's client-side deadline in seconds, or None for the caller's.
    deadline: float | None = None
    #: a server stream of Start's messages (``success``, ``error``), made by ``response(error)``
    streaming: bool = False
    extension: bool = False


def _empty_request(_kwargs: dict[str, Any]) -> Any:
    return Empty()


def _no_arguments(_msg: Any) -> dict[str, Any]:
    return {}


def _empty_response(_result: Any) -> Any:
    return Empty()


def _none(_msg: Any) -> None:
    return None


def _unary(hook: str, rpc: str, deadline: float | None = None) -> Wire:
    """A hook with no arguments and no result."""
    return Wire(hook, rpc, _empty_request, _no_arguments, _empty_response, _none, deadline)


def _tagged(hook: str, rpc: str, message: Any) -> Wire:
    return Wire(hook, rpc, lambda kw: message(tag=kw["tag"]), lambda m: {"tag": m.tag}, _empty_response, _none)


def _returns(hook: str, rpc: str, message: Any, field: str, deadline: float | None = None) -> Wire:
    """A hook with no arguments whose result is one field of the response."""
    return Wire(hook, rpc, _empty_request, _no_arguments, lambda r: message(**{field: r}),
                lambda m: getattr(m, field), deadline)


WIRE: dict[str, Wire] = {w.hook: w for w in (
    Wire("info", "Info", _empty_request, _no_arguments,
         lambda info: pb.InfoResponse(info_json=encode_info(info)),
         lambda m: decode_info(m.info_json), deadline=10),
    Wire("configure", "Configure",
         lambda kw: pb.SetConfigRequest(instance_config_json=encode_instance(kw["instance"])),
         lambda m: {"instance": decode_instance(m.instance_config_json)},
         lambda inst: pb.SetConfigResponse(instance_config_json=encode_instance(inst)),
         lambda m: decode_instance(m.instance_config_json), deadline=10),
    _unary("validate", "Validate", deadline=10),
    _unary("create", "Create"),
    _unary("create_disk", "CreateDisk"),
    Wire("start", "Start", _empty_request, _no_arguments, lambda error: pb.StartResponse(
        success=error is None, error=error or ""), _none, streaming=True),
    _unary("stop", "Stop"),
    _unary("delete", "Delete"),
    _returns("boot_scripts", "BootScripts", pb.BootScriptsResponse, "scripts"),
    # Lima gives RunGUI a 10 s deadline although it blocks until the VM ends;
    # we give it none, so a GUI driver can work externally.
    _unary("run_gui", "RunGUI"),
    Wire("change_display_password", "ChangeDisplayPassword",
         lambda kw: pb.ChangeDisplayPasswordRequest(password=kw["password"]),
         lambda m: {"password": m.password}, _empty_response, _none),
    _returns("display_connection", "GetDisplayConnection", pb.GetDisplayConnectionResponse, "connection"),
    _tagged("create_snapshot", "CreateSnapshot", pb.CreateSnapshotRequest),
    _tagged("apply_snapshot", "ApplySnapshot", pb.ApplySnapshotRequest),
    _tagged("delete_snapshot", "DeleteSnapshot", pb.DeleteSnapshotRequest),
    _returns("list_snapshots", "ListSnapshots", pb.ListSnapshotsResponse, "snapshots"),
    _returns("forward_guest_agent", "ForwardGuestAgent", pb.ForwardGuestAgentResponse, "should_forward",
             deadline=10),
    _unary("guest_agent_conn", "GuestAgentConn"),
    _returns("ssh_address", "SSHAddress", pb.SSHAddressResponse, "address"),
    _unary("additional_setup_for_ssh", "AdditionalSetupForSSH"),
    Wire("capture_screenshot", "CaptureScreenshot",
         lambda kw: ext_pb.CaptureScreenshotRequest(format=kw.get("format", "")),
         lambda m: {"format": m.format},
         lambda image: ext_pb.CaptureScreenshotResponse(image=image),
         lambda m: m.image, extension=True),
    Wire("check_host", "CheckHost", _empty_request, _no_arguments, _empty_response, _none, deadline=10,
         extension=True),
    Wire("suspend", "Suspend", _empty_request, _no_arguments,
         lambda size: ext_pb.SuspendResponse(state_bytes=max(0, int(size or 0))),
         lambda m: m.state_bytes, extension=True),
    Wire("resume", "Resume", _empty_request, _no_arguments, lambda error: ext_pb.ResumeResponse(
        success=error is None, error=error or ""), _none, streaming=True, extension=True),
)}


def stream_message(hook: str, error: str | None = None) -> Any:
    """A message of *hook*'s stream (start, resume): success (started/ended) or one error."""
    wire = WIRE[hook]
    assert wire.streaming, hook
    return wire.response(error)


def start_message(error: str | None = None) -> Any:
    """A Start stream message: success (started/ended) or one error."""
    return stream_message("start", error)


def protocol_info(driver_name: str, hooks: list[str], server: str) -> Any:
    return ext_pb.ProtocolInfo(version=PROTOCOL_VERSION, driver_name=driver_name, hooks=hooks, server=server)


# -- stubs and servicers --------------------------------------------------------------


def unix_target(socket_path: str) -> str:
    """The gRPC address of a unix socket. gRPC percent-decodes it, so ``%`` is escaped; a client splits
    it at commas (a list of addresses), so a path with a comma must be reached another way (see
    ``lima_core.external.client``)."""
    return "unix://" + socket_path.replace("%", "%25")


def channel(socket_path: str) -> grpc.Channel:
    if "," in socket_path:
        raise ValueError(f"gRPC cannot dial a unix socket path with a comma: {socket_path}")
    return grpc.insecure_channel(unix_target(socket_path), options=CHANNEL_OPTIONS)


def stubs(chan: grpc.Channel) -> tuple[pb_grpc.DriverStub, ext_pb_grpc.DriverExtensionsStub]:
    """(Driver stub, DriverExtensions stub) on *chan*."""
    return pb_grpc.DriverStub(chan), ext_pb_grpc.DriverExtensionsStub(chan)


def add_servicers(server: grpc.Server, driver: dict[str, Callable[..., Any]],
                  extensions: dict[str, Callable[..., Any]]) -> None:
    """Serve both services on *server*; *driver* and *extensions* map every RPC name to its handler,
    ``handler(request, context)``."""
    for base, add, handlers in ((pb_grpc.DriverServicer, pb_grpc.add_DriverServicer_to_server, driver),
                                (ext_pb_grpc.DriverExtensionsServicer,
                                 ext_pb_grpc.add_DriverExtensionsServicer_to_server, extensions)):
        servicer = base()
        for rpc, handler in handlers.items():
            setattr(servicer, rpc, handler)
        add(servicer, server)


# -- errors -------------------------------------------------------------------------------

_CODE_FOR = {
    errors.UnsupportedOperation: grpc.StatusCode.UNIMPLEMENTED,
    errors.ConfigError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.HostUnsupported: grpc.StatusCode.FAILED_PRECONDITION,
    errors.InstanceError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DriverTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def abort_with(context: grpc.ServicerContext, exc: BaseException) -> None:
    """Server side: end the RPC with *exc*'s class and message. Never returns."""
    if isinstance(exc, errors.LimaError):
        kind, message = exc.kind, exc.message
        code = next((c for cls, c in _CODE_FOR.items() if isinstance(exc, cls)), grpc.StatusCode.UNKNOWN)
    else:
        kind, message, code = "DriverError", str(exc) or type(exc).__name__, grpc.StatusCode.UNKNOWN
    context.set_trailing_metadata(((ERROR_KIND_KEY, kind),))
    context.abort(code, message)


def error_from_rpc(exc: grpc.RpcError, driver: str, hook: str) -> errors.LimaError:
    """Client side: the LimaError an RPC failure stands for."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = (exc.details() if hasattr(exc, "details") else None) or str(code)
    kind = None
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for k, v in trailing or ():
        if k == ERROR_KIND_KEY:
            kind = v
    if kind:
        return errors.error_class(kind)(message)
    if code == grpc.StatusCode.UNIMPLEMENTED or message.strip().lower() == "unimplemented":
        return errors.UnsupportedOperation(f"driver {driver!r} does not support {hook.replace('_', ' ')}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.DriverTimeout(f"driver {driver!r} did not answer {hook} in time")
    if code == grpc.StatusCode.UNAVAILABLE:
        return errors.DriverUnavailable(f"driver {driver!r} is not reachable ({message}); "
                                        f"its log is driver.stderr.log in the instance directory")
    return errors.DriverError(message)
