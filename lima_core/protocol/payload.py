"""The JSON payloads of the protocol, with Lima's keys: ``Info``, the instance, ``--inspect-status``.

Imports neither grpc nor protobuf: ``lima list`` asks drivers for status with
these alone.
"""

from __future__ import annotations

import base64
import json

from ..errors import ConfigError, DriverError
from ..limatype import Info, Instance


def encode_instance(instance: Instance) -> bytes:
    return instance.to_json_bytes()


def decode_instance(data: bytes) -> Instance:
    """An instance from its JSON; DriverError when it is not one."""
    try:
        return Instance.from_json_bytes(data)
    except (ValueError, ConfigError) as exc:
        raise DriverError(f"malformed instance JSON: {exc}") from exc


def encode_info(info: Info) -> bytes:
    return info.to_json_bytes()


def decode_info(data: bytes) -> Info:
    try:
        return Info.from_json_bytes(data)
    except (ValueError, ConfigError) as exc:
        raise DriverError(f"malformed driver info JSON: {exc}") from exc


def encode_inspect(instance: Instance) -> bytes:
    """The ``--inspect-status`` form: a JSON string holding base64 of the instance JSON, and a newline."""
    return json.dumps(base64.b64encode(instance.to_json_bytes()).decode()).encode() + b"\n"


def decode_inspect(data: bytes) -> Instance:
    try:
        inner = json.loads(data)
        if not isinstance(inner, str):
            raise ValueError("expected a JSON string")
        decoded = base64.b64decode(inner, validate=True)
    except ValueError as exc:
        raise DriverError(f"malformed --inspect-status payload: {exc}") from exc
    return decode_instance(decoded)
