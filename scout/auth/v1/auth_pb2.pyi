import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoginStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOGIN_STATUS_UNSPECIFIED: _ClassVar[LoginStatus]
    LOGIN_STATUS_OK: _ClassVar[LoginStatus]
    LOGIN_STATUS_INVALID_CREDENTIALS: _ClassVar[LoginStatus]
    LOGIN_STATUS_THROTTLED: _ClassVar[LoginStatus]
    LOGIN_STATUS_DISABLED: _ClassVar[LoginStatus]

class SessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATUS_UNSPECIFIED: _ClassVar[SessionStatus]
    SESSION_STATUS_VALID: _ClassVar[SessionStatus]
    SESSION_STATUS_NOT_FOUND: _ClassVar[SessionStatus]
    SESSION_STATUS_EXPIRED: _ClassVar[SessionStatus]

class ChangePasswordStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_PASSWORD_STATUS_UNSPECIFIED: _ClassVar[ChangePasswordStatus]
    CHANGE_PASSWORD_STATUS_OK: _ClassVar[ChangePasswordStatus]
    CHANGE_PASSWORD_STATUS_WRONG_PASSWORD: _ClassVar[ChangePasswordStatus]
    CHANGE_PASSWORD_STATUS_WEAK_PASSWORD: _ClassVar[ChangePasswordStatus]
    CHANGE_PASSWORD_STATUS_THROTTLED: _ClassVar[ChangePasswordStatus]
LOGIN_STATUS_UNSPECIFIED: LoginStatus
LOGIN_STATUS_OK: LoginStatus
LOGIN_STATUS_INVALID_CREDENTIALS: LoginStatus
LOGIN_STATUS_THROTTLED: LoginStatus
LOGIN_STATUS_DISABLED: LoginStatus
SESSION_STATUS_UNSPECIFIED: SessionStatus
SESSION_STATUS_VALID: SessionStatus
SESSION_STATUS_NOT_FOUND: SessionStatus
SESSION_STATUS_EXPIRED: SessionStatus
CHANGE_PASSWORD_STATUS_UNSPECIFIED: ChangePasswordStatus
CHANGE_PASSWORD_STATUS_OK: ChangePasswordStatus
CHANGE_PASSWORD_STATUS_WRONG_PASSWORD: ChangePasswordStatus
CHANGE_PASSWORD_STATUS_WEAK_PASSWORD: ChangePasswordStatus
CHANGE_PASSWORD_STATUS_THROTTLED: ChangePasswordStatus

class User(_message.Message):
    __slots__ = ("id", "account_id", "email", "display_name", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    account_id: str
    email: str
    display_name: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., account_id: _Optional[str] = ..., email: _Optional[str] = ..., display_name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "created_at", "last_seen_at", "idle_expires_at", "absolute_expires_at", "client_address", "user_agent", "current")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    IDLE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ABSOLUTE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    created_at: _timestamp_pb2.Timestamp
    last_seen_at: _timestamp_pb2.Timestamp
    idle_expires_at: _timestamp_pb2.Timestamp
    absolute_expires_at: _timestamp_pb2.Timestamp
    client_address: str
    user_agent: str
    current: bool
    def __init__(self, id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idle_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., absolute_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., client_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., current: _Optional[bool] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("email", "password", "client_address", "user_agent")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    email: str
    password: str
    client_address: str
    user_agent: str
    def __init__(self, email: _Optional[str] = ..., password: _Optional[str] = ..., client_address: _Optional[str] = ..., user_agent: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("status", "session_token", "csrf_token", "user", "session", "retry_after_seconds")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSRF_TOKEN_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    status: LoginStatus
    session_token: str
    csrf_token: str
    user: User
    session: Session
    retry_after_seconds: int
    def __init__(self, status: _Optional[_Union[LoginStatus, str]] = ..., session_token: _Optional[str] = ..., csrf_token: _Optional[str] = ..., user: _Optional[_Union[User, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., retry_after_seconds: _Optional[int] = ...) -> None: ...

class ValidateSessionRequest(_message.Message):
    __slots__ = ("session_token", "client_address")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    client_address: str
    def __init__(self, session_token: _Optional[str] = ..., client_address: _Optional[str] = ...) -> None: ...

class ValidateSessionResponse(_message.Message):
    __slots__ = ("status", "user", "session", "csrf_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CSRF_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: SessionStatus
    user: User
    session: Session
    csrf_token: str
    def __init__(self, status: _Optional[_Union[SessionStatus, str]] = ..., user: _Optional[_Union[User, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., csrf_token: _Optional[str] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ("session_token", "client_address")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    client_address: str
    def __init__(self, session_token: _Optional[str] = ..., client_address: _Optional[str] = ...) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionUse(_message.Message):
    __slots__ = ("token_sha256", "last_used_at", "client_address")
    TOKEN_SHA256_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    token_sha256: bytes
    last_used_at: _timestamp_pb2.Timestamp
    client_address: str
    def __init__(self, token_sha256: _Optional[bytes] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., client_address: _Optional[str] = ...) -> None: ...

class RecordSessionUseRequest(_message.Message):
    __slots__ = ("uses",)
    USES_FIELD_NUMBER: _ClassVar[int]
    uses: _containers.RepeatedCompositeFieldContainer[SessionUse]
    def __init__(self, uses: _Optional[_Iterable[_Union[SessionUse, _Mapping]]] = ...) -> None: ...

class RecordSessionUseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("current_session_id",)
    CURRENT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    current_session_id: str
    def __init__(self, current_session_id: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class RevokeSessionRequest(_message.Message):
    __slots__ = ("session_id", "client_address")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    client_address: str
    def __init__(self, session_id: _Optional[str] = ..., client_address: _Optional[str] = ...) -> None: ...

class RevokeSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeOtherSessionsRequest(_message.Message):
    __slots__ = ("current_session_id", "client_address")
    CURRENT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    current_session_id: str
    client_address: str
    def __init__(self, current_session_id: _Optional[str] = ..., client_address: _Optional[str] = ...) -> None: ...

class RevokeOtherSessionsResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    def __init__(self, revoked: _Optional[int] = ...) -> None: ...

class ChangePasswordRequest(_message.Message):
    __slots__ = ("current_password", "new_password", "current_session_id", "client_address")
    CURRENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CURRENT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    current_password: str
    new_password: str
    current_session_id: str
    client_address: str
    def __init__(self, current_password: _Optional[str] = ..., new_password: _Optional[str] = ..., current_session_id: _Optional[str] = ..., client_address: _Optional[str] = ...) -> None: ...

class ChangePasswordResponse(_message.Message):
    __slots__ = ("sessions_ended", "status", "retry_after_seconds", "weak_reason")
    SESSIONS_ENDED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WEAK_REASON_FIELD_NUMBER: _ClassVar[int]
    sessions_ended: int
    status: ChangePasswordStatus
    retry_after_seconds: int
    weak_reason: str
    def __init__(self, sessions_ended: _Optional[int] = ..., status: _Optional[_Union[ChangePasswordStatus, str]] = ..., retry_after_seconds: _Optional[int] = ..., weak_reason: _Optional[str] = ...) -> None: ...

class ListActivityRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "types")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ...) -> None: ...

class ActivityEvent(_message.Message):
    __slots__ = ("id", "type", "occurred_at", "client_address", "user_agent", "details_json", "actor")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    occurred_at: _timestamp_pb2.Timestamp
    client_address: str
    user_agent: str
    details_json: str
    actor: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., client_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., details_json: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class ListActivityResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ActivityEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[ActivityEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
