"""The relay of the invalidation outbox: what a change could not publish, any replica does.

A change that ends keys queues them in `keys.invalidation_outbox` in its own transaction and, once
its invalidation was published and waited for, hands the rows to `DeliveredRows`, which deletes
them in the background (key_service.domain). Rows still there a while later belong to a
publication that failed (Redis out of this service's reach while the gateways still had it) or
never happened (the replica died after its commit). Every replica runs this relay; `FOR UPDATE
SKIP LOCKED` gives each row to one of them at a time, and the rows go only once the publication
returned, i.e. once every gateway acknowledged it or its lease ran out.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg2
from prometheus_client import CollectorRegistry, Counter

from key_service.errors import InvalidationNotPublished
from key_service.events import InvalidationPublisher
from key_service.repository import KeyRepository
from scout_kit.clock import Clock

log = logging.getLogger(__name__)

RELAY_EVERY_SECONDS = 1.0
# A row younger than this may still be its own change's to publish (a publication waits at most
# provable_expiry(MAX_LEASE_SECONDS), 1.6 s): publishing it twice would be harmless, only wasted.
RELAY_AFTER_SECONDS = 5.0
RELAY_BATCH = 500


class DeliveredRows:
    """Deletes outbox rows whose publication returned, in the background and in batches.

    What makes "ended once the answer is sent" hold is the publication, not the row's deletion:
    a change answers without waiting for it (a round trip to PostgreSQL less on the rotate call's
    path, and a burst of changes is one DELETE). What is queued lives only in this process, which
    is safe to lose: rows a failed delete or a killed replica left behind are published once more
    by the relay, which no gateway minds (an invalidation only drops entries); a replica that
    stops deletes its queue first."""

    def __init__(self, repository: KeyRepository) -> None:
        self._repo = repository
        self._pending: list[int] = []
        self._queued = asyncio.Event()
        # One delete at a time: a stopping service's flush waits for the one in flight, which
        # would otherwise be cancelled with the task and leave its rows to the relay.
        self._deleting = asyncio.Lock()

    async def delivered(self, outbox_ids: tuple[int, ...]) -> None:
        if outbox_ids:
            self._pending.extend(outbox_ids)
            self._queued.set()

    async def flush(self) -> None:
        """Delete what is queued now, after any delete already in flight (failures are logged by
        the repository)."""
        async with self._deleting:
            batch, self._pending = self._pending, []
            self._queued.clear()
            await self._repo.invalidations_delivered(tuple(batch))

    async def run(self) -> None:
        """Until cancelled: delete each batch as it is queued. A batch that cannot be deleted
        stays in the outbox, for the relay."""
        while True:
            await self._queued.wait()
            try:
                await self.flush()
            except (OSError, TimeoutError) as exc:  # the repository logs PostgreSQL's own errors
                log.warning("could not delete delivered invalidations: %r", exc)


class InvalidationRelay:
    def __init__(
        self,
        repository: KeyRepository,
        publisher: InvalidationPublisher,
        clock: Clock,
        *,
        after_seconds: float = RELAY_AFTER_SECONDS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._repo = repository
        self._publisher = publisher
        self._clock = clock
        self._after_seconds = after_seconds
        self._relayed = Counter(
            "scout_key_invalidations_relayed",
            "Ended keys whose invalidation the outbox relay published, because the change that "
            "ended them could not",
            registry=registry,
        )

    async def relay_once(self) -> int:
        """Publish one batch of what is left in the outbox; how many keys it held. Raises
        InvalidationNotPublished (the rows stay) or psycopg2.Error."""
        async with self._repo.undelivered_invalidations(self._after_seconds, RELAY_BATCH) as ended:
            if ended:
                await self._publisher.publish(ended, self._clock.now())
        if ended:
            self._relayed.inc(len(ended))
            log.warning("relayed the invalidation of %d keys that were not published", len(ended))
        return len(ended)

    async def run(self) -> None:
        """Until cancelled: relay every RELAY_EVERY_SECONDS, all batches that are due."""
        while True:
            try:
                while await self.relay_once() == RELAY_BATCH:
                    pass
            except InvalidationNotPublished:
                pass  # logged by the publisher; the rows wait for the next round
            except (psycopg2.Error, OSError) as exc:
                log.warning("could not read the invalidation outbox: %r", exc)
            await asyncio.sleep(RELAY_EVERY_SECONDS)
