"""The ingest service's own parts against real PostgreSQL: group commit and the gateway-only
WriteBatch."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from ingest_service.committer import GroupCommitter, ShuttingDown
from ingest_service.samples import Write, micros
from scout.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from scout_kit.grpc_client import call_metadata
from scout_kit.identity import AuthMethod, Identity, PrincipalKind, TokenIssuer
from tests.gateway.metrics_support import stack_clock, stored
from tests.ingest_service.support import scratch_storage
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
