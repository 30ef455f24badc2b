"""The ingest service's own parts against real PostgreSQL: group commit and the gateway-only
WriteBatch."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import psycopg2.errors
import pytest

from ingest_service.committer import GroupCommitter
from ingest_service.errors import ShuttingDown
from ingest_service.samples import Write, micros
from scout.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from scout_kit.grpc_client import call_metadata
from scout_kit.identity import AuthMethod, Identity, PrincipalKind, TokenIssuer
from tests.gateway.metrics_support import stack_clock, stored
from tests.ingest_service.support import sample_write, scratch_storage
from tests.stack import Environment, running_stack


def _write(server_id: str, clock: ManualClock, ages: list[float], name: str = "cpu") -> Write:
    stamps = [micros(clock.now() - timedelta(seconds=a)) for a in ages]
    return Write(
        server_id, str(uuid.uuid4()), stamps, [1] * len(ages), [name] * len(ages), [1.0] * len(ages)
    )


async def test_group_commit_stores_all_and_close_refuses_new(
    admin: Admin, env: Environment
) -> None:
    async with scratch_storage(admin, env, now=datetime.now(UTC)) as storage:
        clock = storage.clock
        committer = GroupCommitter(
            storage.repository, clock, max_queued_values=10_000, max_batch_values=7, writers=2
        )
        servers = [str(uuid.uuid4()) for _ in range(5)]
        await asyncio.gather(
            *(committer.submit([_write(s, clock, [1, 2, 3])]) for s in servers),
            # A resend of the first server's samples, in the same group or the next.
            committer.submit([_write(servers[0], clock, [1, 2, 3])]),
        )
        await committer.close()
        for server_id in servers:
            assert len(await stored(admin, server_id, storage.schema)) == 3
        with pytest.raises(ShuttingDown):
            await committer.submit([_write(servers[0], clock, [4])])


class RecordingObserver:
    """What the committer reports to its metrics: requests per group, by outcome."""

    def __init__(self) -> None:
        self.committed_groups: list[int] = []
        self.failed_groups: list[int] = []

    def committed(self, requests: int, values: int, seconds: float) -> None:
        self.committed_groups.append(requests)

    def failed(self, requests: int, values: int, seconds: float) -> None:
        self.failed_groups.append(requests)

    def refused(self, values: int) -> None:
        raise AssertionError("nothing should be refused here")


async def test_a_failing_group_commit_fails_each_request_and_the_next_group_commits(
    admin: Admin, env: Environment
) -> None:
    async with scratch_storage(admin, env) as storage:
        clock = storage.clock
        observer = RecordingObserver()
        committer = GroupCommitter(
            storage.repository,
            clock,
            max_queued_values=10_000,
            max_batch_values=10_000,
            writers=1,
            observer=observer,
        )
        good_server, other_server = str(uuid.uuid4()), str(uuid.uuid4())
        good = sample_write(good_server, [(clock.now(), {"cpu": 1.0})])
        # No partition this far ahead and no make_room: the group's transaction fails.
        broken = sample_write(other_server, [(clock.now() + timedelta(days=400), {"cpu": 2.0})])
        answers = await asyncio.gather(
            committer.submit([good]), committer.submit([broken]), return_exceptions=True
        )
        assert [type(a) for a in answers] == [psycopg2.errors.CheckViolation] * 2
        assert observer.failed_groups == [2]
        assert await stored(admin, good_server, storage.schema) == []
        await committer.submit([good])
        await committer.close()
        assert observer.committed_groups == [1]
        assert len(await stored(admin, good_server, storage.schema)) == 1


async def test_write_batch_is_for_the_gateway_only(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    issuer = TokenIssuer(env.jwt_private_pem, clock)
    server_id = str(uuid.uuid4())
    account_id = str(uuid.uuid4())
    as_server = Identity(PrincipalKind.SERVER, server_id, account_id, AuthMethod.API_KEY)
    gateway = Identity(PrincipalKind.SERVICE, "gateway", None, AuthMethod.SERVICE)
    entry = ingest_pb2.SampleColumns(
        server_id=server_id,
        account_id=account_id,
        sample_ts_micros=[micros(clock.now())],
        sample_sizes=[1],
        names=["cpu"],
        values=[1.0],
    )
    bad = ingest_pb2.SampleColumns(
        server_id=server_id,
        account_id=account_id,
        sample_ts_micros=[micros(clock.now())],
        sample_sizes=[2],
        names=["cpu"],
        values=[1.0],
    )
    async with (
        running_stack(env, clock=clock) as stack,
        stack.env.service_channel(stack.ingest.port) as channel,
    ):
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.WriteBatch(
                ingest_pb2.WriteBatchRequest(entries=[entry]),
                metadata=call_metadata(issuer.token_for(as_server)),
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        answer = await stub.WriteBatch(
            ingest_pb2.WriteBatchRequest(entries=[entry, bad]),
            metadata=call_metadata(issuer.token_for(gateway)),
        )
        assert answer.results[0].error == ""
        assert "line up" in answer.results[1].error
        # WriteBatch is the only write path: the per-request RPC is gone from the contract.
        assert not hasattr(stub, "WriteSamples")
    assert len(await stored(admin, server_id)) == 1
