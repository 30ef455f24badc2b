import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    END_REASON_UNSPECIFIED: _ClassVar[EndReason]
    END_REASON_ROTATED: _ClassVar[EndReason]
    END_REASON_REVOKED: _ClassVar[EndReason]
END_REASON_UNSPECIFIED: EndReason
END_REASON_ROTATED: EndReason
END_REASON_REVOKED: EndReason

class Invalidation(_message.Message):
    __slots__ = ("version", "event_id", "instance", "published_at", "ack_key", "keys", "sessions")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ACK_KEY_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    version: int
    event_id: str
    instance: str
    published_at: _timestamp_pb2.Timestamp
    ack_key: str
    keys: EndedKeys
    sessions: EndedSessions
    def __init__(self, version: _Optional[int] = ..., event_id: _Optional[str] = ..., instance: _Optional[str] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ack_key: _Optional[str] = ..., keys: _Optional[_Union[EndedKeys, _Mapping]] = ..., sessions: _Optional[_Union[EndedSessions, _Mapping]] = ...) -> None: ...

class EndedSessions(_message.Message):
    __slots__ = ("token_sha256", "user_id")
    TOKEN_SHA256_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    token_sha256: _containers.RepeatedScalarFieldContainer[bytes]
    user_id: str
    def __init__(self, token_sha256: _Optional[_Iterable[bytes]] = ..., user_id: _Optional[str] = ...) -> None: ...

class EndedKeys(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[EndedKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[EndedKey, _Mapping]]] = ...) -> None: ...

class EndedKey(_message.Message):
    __slots__ = ("key_sha256", "key_id", "server_id", "reason", "valid_until")
    KEY_SHA256_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    key_sha256: bytes
    key_id: str
    server_id: str
    reason: EndReason
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, key_sha256: _Optional[bytes] = ..., key_id: _Optional[str] = ..., server_id: _Optional[str] = ..., reason: _Optional[_Union[EndReason, str]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
