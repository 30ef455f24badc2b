import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_STATUS_UNSPECIFIED: _ClassVar[KeyStatus]
    KEY_STATUS_VALID: _ClassVar[KeyStatus]
    KEY_STATUS_NOT_FOUND: _ClassVar[KeyStatus]
    KEY_STATUS_ROTATED: _ClassVar[KeyStatus]
    KEY_STATUS_REVOKED: _ClassVar[KeyStatus]
KEY_STATUS_UNSPECIFIED: KeyStatus
KEY_STATUS_VALID: KeyStatus
KEY_STATUS_NOT_FOUND: KeyStatus
KEY_STATUS_ROTATED: KeyStatus
KEY_STATUS_REVOKED: KeyStatus

class Server(_message.Message):
    __slots__ = ("id", "account_id", "name", "created_at", "key_hint", "key_created_at", "key_last_used_at", "key_last_used_address", "paused_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    KEY_CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_LAST_USED_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    account_id: str
    name: str
    created_at: _timestamp_pb2.Timestamp
    key_hint: str
    key_created_at: _timestamp_pb2.Timestamp
    key_last_used_at: _timestamp_pb2.Timestamp
    key_last_used_address: str
    paused_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., account_id: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_hint: _Optional[str] = ..., key_created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_last_used_address: _Optional[str] = ..., paused_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ValidateKeyRequest(_message.Message):
    __slots__ = ("key_sha256",)
    KEY_SHA256_FIELD_NUMBER: _ClassVar[int]
    key_sha256: bytes
    def __init__(self, key_sha256: _Optional[bytes] = ...) -> None: ...

class ValidateKeyResponse(_message.Message):
    __slots__ = ("status", "key_id", "server_id", "account_id", "valid_until")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    status: KeyStatus
    key_id: str
    server_id: str
    account_id: str
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[_Union[KeyStatus, str]] = ..., key_id: _Optional[str] = ..., server_id: _Optional[str] = ..., account_id: _Optional[str] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class KeyUsage(_message.Message):
    __slots__ = ("key_id", "last_used_at", "last_used_address", "request_count")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    last_used_at: _timestamp_pb2.Timestamp
    last_used_address: str
    request_count: int
    def __init__(self, key_id: _Optional[str] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_address: _Optional[str] = ..., request_count: _Optional[int] = ...) -> None: ...

class KeyRejection(_message.Message):
    __slots__ = ("key_id", "last_rejected_at", "last_rejected_address", "attempt_count")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_REJECTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_REJECTED_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    last_rejected_at: _timestamp_pb2.Timestamp
    last_rejected_address: str
    attempt_count: int
    def __init__(self, key_id: _Optional[str] = ..., last_rejected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_rejected_address: _Optional[str] = ..., attempt_count: _Optional[int] = ...) -> None: ...

class RecordKeyUsageRequest(_message.Message):
    __slots__ = ("usages", "rejections")
    USAGES_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    usages: _containers.RepeatedCompositeFieldContainer[KeyUsage]
    rejections: _containers.RepeatedCompositeFieldContainer[KeyRejection]
    def __init__(self, usages: _Optional[_Iterable[_Union[KeyUsage, _Mapping]]] = ..., rejections: _Optional[_Iterable[_Union[KeyRejection, _Mapping]]] = ...) -> None: ...

class RecordKeyUsageResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateServerRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateServerResponse(_message.Message):
    __slots__ = ("server", "api_key")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    server: Server
    api_key: str
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ..., api_key: _Optional[str] = ...) -> None: ...

class ListServersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListServersResponse(_message.Message):
    __slots__ = ("servers", "next_page_token")
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[Server]
    next_page_token: str
    def __init__(self, servers: _Optional[_Iterable[_Union[Server, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetServerRequest(_message.Message):
    __slots__ = ("server_id",)
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    def __init__(self, server_id: _Optional[str] = ...) -> None: ...

class GetServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class DeleteServerRequest(_message.Message):
    __slots__ = ("server_id",)
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    def __init__(self, server_id: _Optional[str] = ...) -> None: ...

class DeleteServerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateServerRequest(_message.Message):
    __slots__ = ("server_id", "name", "paused")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    name: str
    paused: bool
    def __init__(self, server_id: _Optional[str] = ..., name: _Optional[str] = ..., paused: _Optional[bool] = ...) -> None: ...

class UpdateServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: Server
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ...) -> None: ...

class RotateKeyRequest(_message.Message):
    __slots__ = ("server_id", "grace_seconds")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    grace_seconds: int
    def __init__(self, server_id: _Optional[str] = ..., grace_seconds: _Optional[int] = ...) -> None: ...

class RotateKeyResponse(_message.Message):
    __slots__ = ("server", "api_key", "old_key_valid_until")
    SERVER_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    OLD_KEY_VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    server: Server
    api_key: str
    old_key_valid_until: _timestamp_pb2.Timestamp
    def __init__(self, server: _Optional[_Union[Server, _Mapping]] = ..., api_key: _Optional[str] = ..., old_key_valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListActivityRequest(_message.Message):
    __slots__ = ("server_id", "page_size", "page_token", "types")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    page_size: int
    page_token: str
    types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, server_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ...) -> None: ...

class ActivityEvent(_message.Message):
    __slots__ = ("id", "type", "occurred_at", "actor", "client_address", "key_hint", "details_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    occurred_at: _timestamp_pb2.Timestamp
    actor: str
    client_address: str
    key_hint: str
    details_json: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., client_address: _Optional[str] = ..., key_hint: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class ListActivityResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ActivityEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[ActivityEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
