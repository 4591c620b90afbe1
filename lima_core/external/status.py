"""Asking external drivers for instance status, as ``lima list`` does: one process per driver, no grpc.

Lima's one-shot protocol runs ``lima-driver-<name> --inspect-status`` with the
instance on stdin (a JSON string holding base64 of the instance JSON) and
reads it back, status filled, from stdout: one process per instance. lima-core
servers also take ``--inspect-status-batch``: one such payload per line in, one
line out for each, in order, or ``{"error": "message"}`` for an instance the
driver failed on. :func:`inspect_statuses` uses that, so a listing runs each
driver once however many instances it has. A driver that does not know the
flag exits with status 2 (Go's ``flag`` package does, and so does ours), and
its instances are asked one by one.

This module imports no grpc: ``lima list`` does not need it.
"""

from __future__ import annotations

import json
import subprocess

from ..errors import DriverError, DriverTimeout, LimaError
from ..limatype import Instance
from ..processes import describe_exit, tail
from ..protocol.payload import decode_inspect, encode_inspect

#: The one-shot call's time limit (the batch gets this plus a second per instance).
INSPECT_STATUS_TIMEOUT = 10.0
BATCH_FLAG = "--inspect-status-batch"


def inspect_statuses(path: str, instances: list[Instance]) -> list[str | LimaError] | None:
    """Each instance's status from one run of ``path --inspect-status-batch``.

    Fills each instance from the reply, as the one-shot protocol does; an
    instance the driver failed on gets its error instead of a status. None
    when the driver does not know the flag (ask each instance then).
    """
    timeout = INSPECT_STATUS_TIMEOUT + len(instances)
    try:
        proc = subprocess.run([path, BATCH_FLAG], input=b"".join(encode_inspect(i) for i in instances),
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DriverTimeout(f"{path} {BATCH_FLAG} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise DriverError(f"cannot run {path} {BATCH_FLAG}: {exc.strerror}") from None
    if proc.returncode == 2:
        return None
    if proc.returncode != 0:
        err = tail(proc.stderr.decode(errors="replace"), 1)
        raise DriverError(f"{path} {BATCH_FLAG} {describe_exit(proc.returncode)}" + (f": {err}" if err else ""))
    # The replies are the last lines on stdout (whatever a library printed before them is not).
    replies = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith((b'"', b"{"))][-len(instances):]
    if len(replies) != len(instances):
        raise DriverError(f"{path} {BATCH_FLAG} answered for {len(replies)} of {len(instances)} instances")
    return [_reply(inst, reply) for inst, reply in zip(instances, replies, strict=True)]


def _reply(instance: Instance, reply: bytes) -> str | LimaError:
    if reply.strip().startswith(b"{"):
        try:
            message = json.loads(reply).get("error")
        except (ValueError, AttributeError):
            message = None
        return DriverError(str(message or f"malformed reply {reply[:80]!r}"))
    try:
        instance.replace_with(decode_inspect(reply))
    except LimaError as exc:
        return exc
    return instance.status
