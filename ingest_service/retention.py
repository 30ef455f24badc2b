"""Retention: samples older than the configured age are deleted in the background, in small
batches, so no long transaction or lock competes with ingest."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ingest_service.repository import SampleRepository
from scout_kit.clock import Clock
from scout_kit.grpc_server import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)


class RetentionJob:
    def __init__(
        self, repository: SampleRepository, clock: Clock, retention: timedelta, batch_size: int
    ) -> None:
        self._repo = repository
        self._clock = clock
        self._retention = retention
        self._batch_size = batch_size

    async def run_once(self) -> int:
        """Delete everything older than the retention; returns how many samples went."""
        cutoff = self._clock.now() - self._retention
        total = 0
        while True:
            deleted = await self._repo.delete_older_than(cutoff, self._batch_size)
            total += deleted
            if deleted < self._batch_size:
                break
        if total:
            log.info("retention deleted %d samples older than %s", total, cutoff.isoformat())
        return total

    async def run(self, interval_seconds: float) -> None:
        """Forever: a pass, then a pause. A database outage skips a pass, nothing more."""
        while True:
            try:
                await self.run_once()
            except DEPENDENCY_ERRORS as exc:
                log.warning("retention pass skipped: %r", exc)
            await asyncio.sleep(interval_seconds)
