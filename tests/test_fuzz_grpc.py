"""Property-based: every method of every gRPC service, called over real channels with field
values drawn from the whole range of each field's type (any Unicode, NUL, huge numbers,
Timestamps past the calendar, unknown enum values), as each kind of caller, answers with a
proper status: never INTERNAL or UNKNOWN, and no ERROR log line. The services' own validation
holds without the gateway in front."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scout.auth.v1 import auth_pb2
from scout.ingest.v1 import ingest_pb2
from scout.keys.v1 import keys_pb2
from scout_kit.clock import SystemClock
from scout_kit.grpc_client import call_metadata
from scout_kit.identity import AuthMethod, Identity, PrincipalKind, TokenIssuer, service_identity
from tests.live_stack import error_records, new_account, on_background_loop
from tests.stack import Environment, running_stack

EXAMPLES_PER_METHOD = 40
SERVICES = {
    "auth": auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    "keys": keys_pb2.DESCRIPTOR.services_by_name["KeyService"],
    "ingest": ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
}
REFUSED = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}


@dataclass
class _Live:
    loop: asyncio.AbstractEventLoop
    channels: dict[str, grpc.aio.Channel]
    identities: list[Identity]
    known: dict[str, str]  # field name -> a real value (a real server's id, ...)
    errors: list[logging.LogRecord]


@pytest.fixture
def live(env: Environment) -> Iterator[_Live]:
    """The three services on a background thread's loop, with a real user and server whose
    ids the fuzzing uses as often as made-up ones."""

    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[_Live]:
        account = await new_account(env)
        user, created = account.user, account.created
        key_id = account.key_id
        digest = hashlib.sha256(created.api_key.encode()).digest().decode("latin-1")
        async with running_stack(env, gateways=0) as stack:
            channels = {
                "auth": env.service_channel(stack.auth.port),
                "keys": env.service_channel(stack.keys.port),
                "ingest": env.service_channel(stack.ingest.port),
            }
            identities = [
                service_identity("gateway"),
                service_identity("ingest"),
                Identity(
                    PrincipalKind.USER,
                    user.id,
                    user.account_id,
                    AuthMethod.SESSION,
                    session_id="0123456789abcdef0123456789abcdef",
                ),
                Identity(
                    PrincipalKind.SERVER,
                    created.server.id,
                    user.account_id,
                    AuthMethod.API_KEY,
                ),
            ]
            known = {
                "user_id": user.id,
                "account_id": user.account_id,
                "server_id": created.server.id,
                "key_id": key_id,
                "email": account.email,
                "names": "cpu",
                "key_sha256": digest,  # bytes, as latin-1 text
            }
            try:
                yield _Live(asyncio.get_running_loop(), channels, identities, known, errors)
            finally:
                for channel in channels.values():
                    await channel.close()

    with error_records() as errors, on_background_loop(serve) as live:
        yield live


_INTS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (low, high, 0, 1, -1, 2**31 - 1, 2**53) if low <= v <= high]
    return st.one_of(
        st.integers(low, high), st.sampled_from(edges), st.integers(max(low, -5), min(high, 500))
    )


def _value(field: FieldDescriptor, known: dict[str, str], depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INTS:
        return _integers(*_INTS[kind])
    if kind == FieldDescriptor.TYPE_STRING:
        # The real value of a field of this name most of the time, so that calls get past
        # "not found" to the checks behind it.
        real = [st.just(known[field.name])] * 3 if field.name in known else []
        return st.one_of(
            *real,
            st.sampled_from(sorted(known.values())),
            st.text(max_size=40),
            st.text(max_size=5).map(lambda t: t + "\x00"),
            st.text(st.characters(codec="utf-8"), min_size=300, max_size=2000),
        )
    if kind == FieldDescriptor.TYPE_BYTES:
        digest = [known[field.name].encode("latin-1")] if field.name in known else []
        return st.one_of(
            *[st.just(value) for value in digest * 3],
            st.binary(max_size=40),
            st.binary(min_size=32, max_size=32),
        )
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), _integers(-(2**31), 2**31 - 1))
    assert kind == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None
    return _message(field.message_type, known, depth + 1)


def _field(field: FieldDescriptor, known: dict[str, str], depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field, value_field = field.message_type.fields
        return st.dictionaries(
            _value(key_field, known, depth), _value(value_field, known, depth), max_size=4
        )
    if field.is_repeated:
        return st.lists(_value(field, known, depth), max_size=5)
    return _value(field, known, depth)


_NOW = int(time.time())
# Instants now (so that calls get past the range checks), at and past both ends of what a
# Timestamp may hold, and anything an int64 holds; nanos valid or not.
_TIMESTAMPS = st.builds(
    Timestamp,
    seconds=st.one_of(
        st.integers(_NOW - 86_400, _NOW + 60),
        st.sampled_from([-62135596800, -62135596801, 253402300799, 253402300800, 0]),
        _integers(-(2**63), 2**63 - 1),
    ),
    nanos=st.one_of(st.just(0), _integers(-(2**31), 2**31 - 1)),
)


def _message(
    descriptor: Descriptor, known: dict[str, str], depth: int = 0
) -> st.SearchStrategy[Any]:
    if descriptor.full_name == "google.protobuf.Timestamp":
        return _TIMESTAMPS
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 3:
        return st.just(cls())
    fields = {f.name: _field(f, known, depth) for f in descriptor.fields}
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: cls(**values))


def _methods() -> list[tuple[str, MethodDescriptor]]:
    return [(name, method) for name, service in SERVICES.items() for method in service.methods]


@pytest.mark.parametrize(
    ("service", "method"), _methods(), ids=[f"{s}.{m.name}" for s, m in _methods()]
)
def test_every_method_answers_any_field_values_with_a_proper_status(
    live: _Live, env: Environment, service: str, method: MethodDescriptor
) -> None:
    issuer = TokenIssuer(env.jwt_private_pem, SystemClock())
    output = message_factory.GetMessageClass(method.output_type)
    call: Any = live.channels[service].unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=output.FromString,
    )

    async def invoke(request: Any, identity: Identity) -> grpc.StatusCode:
        try:
            await call(request, metadata=call_metadata(issuer.token_for(identity)), timeout=30)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    @given(
        request=_message(method.input_type, live.known),
        identity=st.sampled_from(live.identities),
    )
    @settings(
        max_examples=EXAMPLES_PER_METHOD,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(request: Any, identity: Identity) -> None:
        code = asyncio.run_coroutine_threadsafe(invoke(request, identity), live.loop).result(60)
        assert code not in REFUSED, (code, request)
        assert not live.errors, [r.getMessage() for r in live.errors]

    fuzz()
