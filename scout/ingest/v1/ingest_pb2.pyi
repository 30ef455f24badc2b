import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SampleColumns(_message.Message):
    __slots__ = ("server_id", "account_id", "sample_ts_micros", "sample_sizes", "names", "values")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_TS_MICROS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZES_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    account_id: str
    sample_ts_micros: _containers.RepeatedScalarFieldContainer[int]
    sample_sizes: _containers.RepeatedScalarFieldContainer[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, server_id: _Optional[str] = ..., account_id: _Optional[str] = ..., sample_ts_micros: _Optional[_Iterable[int]] = ..., sample_sizes: _Optional[_Iterable[int]] = ..., names: _Optional[_Iterable[str]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class WriteBatchRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[SampleColumns]
    def __init__(self, entries: _Optional[_Iterable[_Union[SampleColumns, _Mapping]]] = ...) -> None: ...

class EntryResult(_message.Message):
    __slots__ = ("error", "accepted")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    error: str
    accepted: int
    def __init__(self, error: _Optional[str] = ..., accepted: _Optional[int] = ...) -> None: ...

class WriteBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EntryResult]
    def __init__(self, results: _Optional[_Iterable[_Union[EntryResult, _Mapping]]] = ...) -> None: ...

class QueryMetricsRequest(_message.Message):
    __slots__ = ("server_id", "names", "to", "step_seconds")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    to: _timestamp_pb2.Timestamp
    step_seconds: int
    def __init__(self, server_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., step_seconds: _Optional[int] = ..., **kwargs) -> None: ...

class Series(_message.Message):
    __slots__ = ("name", "start_micros", "avg", "min", "max", "count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_MICROS_FIELD_NUMBER: _ClassVar[int]
    AVG_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    start_micros: _containers.RepeatedScalarFieldContainer[int]
    avg: _containers.RepeatedScalarFieldContainer[float]
    min: _containers.RepeatedScalarFieldContainer[float]
    max: _containers.RepeatedScalarFieldContainer[float]
    count: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., start_micros: _Optional[_Iterable[int]] = ..., avg: _Optional[_Iterable[float]] = ..., min: _Optional[_Iterable[float]] = ..., max: _Optional[_Iterable[float]] = ..., count: _Optional[_Iterable[int]] = ...) -> None: ...

class QueryMetricsResponse(_message.Message):
    __slots__ = ("series", "step_seconds")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    STEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[Series]
    step_seconds: int
    def __init__(self, series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ..., step_seconds: _Optional[int] = ...) -> None: ...

class LatestMetricsRequest(_message.Message):
    __slots__ = ("server_id",)
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    def __init__(self, server_id: _Optional[str] = ...) -> None: ...

class LatestValue(_message.Message):
    __slots__ = ("name", "value", "ts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    ts: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LatestMetricsResponse(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[LatestValue]
    def __init__(self, values: _Optional[_Iterable[_Union[LatestValue, _Mapping]]] = ...) -> None: ...

class ListMetricNamesRequest(_message.Message):
    __slots__ = ("server_id",)
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    def __init__(self, server_id: _Optional[str] = ...) -> None: ...

class ListMetricNamesResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class LastSeenRequest(_message.Message):
    __slots__ = ("server_ids",)
    SERVER_IDS_FIELD_NUMBER: _ClassVar[int]
    server_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, server_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ServerLastSeen(_message.Message):
    __slots__ = ("server_id", "last_seen_at")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    last_seen_at: _timestamp_pb2.Timestamp
    def __init__(self, server_id: _Optional[str] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LastSeenResponse(_message.Message):
    __slots__ = ("servers",)
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[ServerLastSeen]
    def __init__(self, servers: _Optional[_Iterable[_Union[ServerLastSeen, _Mapping]]] = ...) -> None: ...
