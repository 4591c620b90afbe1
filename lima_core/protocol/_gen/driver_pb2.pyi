from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class StartResponse(_message.Message):
    __slots__ = ("success", "error")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    def __init__(self, success: bool = ..., error: _Optional[str] = ...) -> None: ...

class BootScriptsResponse(_message.Message):
    __slots__ = ("scripts",)
    class ScriptsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    SCRIPTS_FIELD_NUMBER: _ClassVar[int]
    scripts: _containers.ScalarMap[str, bytes]
    def __init__(self, scripts: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class SSHAddressResponse(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: str
    def __init__(self, address: _Optional[str] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("info_json",)
    INFO_JSON_FIELD_NUMBER: _ClassVar[int]
    info_json: bytes
    def __init__(self, info_json: _Optional[bytes] = ...) -> None: ...

class SetConfigRequest(_message.Message):
    __slots__ = ("instance_config_json",)
    INSTANCE_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    instance_config_json: bytes
    def __init__(self, instance_config_json: _Optional[bytes] = ...) -> None: ...

class SetConfigResponse(_message.Message):
    __slots__ = ("instance_config_json",)
    INSTANCE_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    instance_config_json: bytes
    def __init__(self, instance_config_json: _Optional[bytes] = ...) -> None: ...

class ChangeDisplayPasswordRequest(_message.Message):
    __slots__ = ("password",)
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    password: str
    def __init__(self, password: _Optional[str] = ...) -> None: ...

class GetDisplayConnectionResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: str
    def __init__(self, connection: _Optional[str] = ...) -> None: ...

class CreateSnapshotRequest(_message.Message):
    __slots__ = ("tag",)
    TAG_FIELD_NUMBER: _ClassVar[int]
    tag: str
    def __init__(self, tag: _Optional[str] = ...) -> None: ...

class ApplySnapshotRequest(_message.Message):
    __slots__ = ("tag",)
    TAG_FIELD_NUMBER: _ClassVar[int]
    tag: str
    def __init__(self, tag: _Optional[str] = ...) -> None: ...

class DeleteSnapshotRequest(_message.Message):
    __slots__ = ("tag",)
    TAG_FIELD_NUMBER: _ClassVar[int]
    tag: str
    def __init__(self, tag: _Optional[str] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: str
    def __init__(self, snapshots: _Optional[str] = ...) -> None: ...

class ForwardGuestAgentResponse(_message.Message):
    __slots__ = ("should_forward",)
    SHOULD_FORWARD_FIELD_NUMBER: _ClassVar[int]
    should_forward: bool
    def __init__(self, should_forward: bool = ...) -> None: ...
