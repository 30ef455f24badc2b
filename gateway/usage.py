"""Batches "key used" and "dead key tried" facts and reports them to the key service every few
seconds; likewise the uses of cached sessions, to the auth service.

A request costs a dictionary update, not a database write. What a replica holds here is at most
one flush interval of telemetry; losing it in a crash only makes `key_last_used_at` (or the
rejection count) a few seconds staler, which is why it may live in process memory.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

import grpc

from gateway.backends import Backends
from scout.auth.v1 import auth_pb2
from scout.keys.v1 import keys_pb2
from scout_kit.clock import Clock
from scout_kit.timestamps import to_timestamp

log = logging.getLogger(__name__)

MAX_PENDING = 100_000
SESSION_USES_PER_CALL = 1_000


@dataclass
class _Tally:
    last_at: datetime
    address: str
    count: int


class KeyUsageRecorder:
    def __init__(self, backends: Backends, clock: Clock, interval: float) -> None:
        self._backends = backends
        self._clock = clock
        self._interval = interval
        self._used: dict[str, _Tally] = {}
        self._rejected: dict[str, _Tally] = {}

    def record(self, key_id: str, address: str) -> None:
        self._add(self._used, key_id, address)

    def record_rejection(self, key_id: str, address: str) -> None:
        self._add(self._rejected, key_id, address)

    def _add(self, tallies: dict[str, _Tally], key_id: str, address: str) -> None:
        tally = tallies.get(key_id)
        if tally is None:
            if len(tallies) >= MAX_PENDING:
                return  # the key service is unreachable for long; telemetry is what gives
            tallies[key_id] = _Tally(self._clock.now(), address, 1)
        else:
            tally.last_at, tally.address = self._clock.now(), address
            tally.count += 1

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._used and not self._rejected:
            return
        used, self._used = self._used, {}
        rejected, self._rejected = self._rejected, {}
        request = keys_pb2.RecordKeyUsageRequest(
            usages=[
                keys_pb2.KeyUsage(
                    key_id=key_id,
                    last_used_at=to_timestamp(t.last_at),
                    last_used_address=t.address,
                    request_count=t.count,
                )
                for key_id, t in used.items()
            ],
            rejections=[
                keys_pb2.KeyRejection(
                    key_id=key_id,
                    last_rejected_at=to_timestamp(t.last_at),
                    last_rejected_address=t.address,
                    attempt_count=t.count,
                )
                for key_id, t in rejected.items()
            ],
        )
        try:
            await self._backends.keys.RecordKeyUsage(
                request, metadata=self._backends.service_metadata(), timeout=self._backends.timeout
            )
        except grpc.aio.AioRpcError as exc:
            # Put the facts back (merged with newer ones) so the next flush retries them.
            _merge_back(self._used, used)
            _merge_back(self._rejected, rejected)
            log.warning("could not report key usage: %s", exc.code().name)


def _merge_back(current: dict[str, _Tally], older: dict[str, _Tally]) -> None:
    for key_id, tally in older.items():
        newer = current.get(key_id)
        if newer is None:
            current[key_id] = tally
        else:
            newer.count += tally.count


class SessionUseRecorder:
    """Batches the uses of sessions answered from the session cache and reports them to the auth
    service, which slides their idle deadlines: a session in use never idles out because its
    requests were answered here. Losing a batch only makes one idle deadline start earlier, by
    at most the session cache's TTL (the next validation slides it again)."""

    def __init__(self, backends: Backends, clock: Clock, interval: float) -> None:
        self._backends = backends
        self._clock = clock
        self._interval = interval
        self._used: dict[bytes, tuple[datetime, str]] = {}

    def record(self, digest: bytes, address: str) -> None:
        if digest in self._used or len(self._used) < MAX_PENDING:
            self._used[digest] = (self._clock.now(), address)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        used, self._used = self._used, {}
        items = list(used.items())
        for start in range(0, len(items), SESSION_USES_PER_CALL):
            request = auth_pb2.RecordSessionUseRequest(
                uses=[
                    auth_pb2.SessionUse(
                        token_sha256=digest,
                        last_used_at=to_timestamp(at),
                        client_address=address,
                    )
                    for digest, (at, address) in items[start : start + SESSION_USES_PER_CALL]
                ]
            )
            try:
                await self._backends.auth.RecordSessionUse(
                    request,
                    metadata=self._backends.service_metadata(),
                    timeout=self._backends.timeout,
                )
            except grpc.aio.AioRpcError as exc:
                # Not retried: the session's next validation slides it anyway.
                log.warning("could not report session use: %s", exc.code().name)
