"""Batches "key last used" facts and reports them to the key service every few seconds.

A request costs a dictionary update, not a database write. What a replica holds here is at most
one flush interval of telemetry; losing it in a crash only makes `key_last_used_at` a few
seconds older, which is why it may live in process memory.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.backends import Backends
from scout.keys.v1 import keys_pb2
from scout_kit.clock import Clock

log = logging.getLogger(__name__)


@dataclass
class _Usage:
    last_used_at: datetime
    address: str
    count: int


class KeyUsageRecorder:
    def __init__(self, backends: Backends, clock: Clock, interval: float) -> None:
        self._backends = backends
        self._clock = clock
        self._interval = interval
        self._pending: dict[str, _Usage] = {}

    def record(self, key_id: str, address: str) -> None:
        now = self._clock.now()
        usage = self._pending.get(key_id)
        if usage is None:
            self._pending[key_id] = _Usage(now, address, 1)
        else:
            usage.last_used_at, usage.address = now, address
            usage.count += 1

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        usages = []
        for key_id, usage in pending.items():
            ts = Timestamp()
            ts.FromDatetime(usage.last_used_at)
            usages.append(
                keys_pb2.KeyUsage(
                    key_id=key_id, last_used_at=ts, last_used_address=usage.address,
                    request_count=usage.count,
                )
            )
        try:
            await self._backends.keys.RecordKeyUsage(
                keys_pb2.RecordKeyUsageRequest(usages=usages),
                metadata=self._backends.service_metadata(),
                timeout=self._backends.timeout,
            )
        except grpc.aio.AioRpcError as exc:
            # Put the facts back (merging with newer ones) so the next flush retries them.
            for key_id, usage in pending.items():
                newer = self._pending.get(key_id)
                if newer is None:
                    self._pending[key_id] = usage
                else:
                    newer.count += usage.count
            log.warning("could not report key usage: %s", exc.code().name)
