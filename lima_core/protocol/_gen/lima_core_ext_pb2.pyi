from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ProtocolInfo(_message.Message):
    __slots__ = ("version", "driver_name", "hooks", "server")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DRIVER_NAME_FIELD_NUMBER: _ClassVar[int]
    HOOKS_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    version: int
    driver_name: str
    hooks: _containers.RepeatedScalarFieldContainer[str]
    server: str
    def __init__(self, version: _Optional[int] = ..., driver_name: _Optional[str] = ..., hooks: _Optional[_Iterable[str]] = ..., server: _Optional[str] = ...) -> None: ...

class CaptureScreenshotRequest(_message.Message):
    __slots__ = ("format",)
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    format: str
    def __init__(self, format: _Optional[str] = ...) -> None: ...

class CaptureScreenshotResponse(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    def __init__(self, image: _Optional[bytes] = ...) -> None: ...

class SuspendResponse(_message.Message):
    __slots__ = ("state_bytes",)
    STATE_BYTES_FIELD_NUMBER: _ClassVar[int]
    state_bytes: int
    def __init__(self, state_bytes: _Optional[int] = ...) -> None: ...

class ResumeResponse(_message.Message):
    __slots__ = ("success", "error")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    def __init__(self, success: bool = ..., error: _Optional[str] = ...) -> None: ...
