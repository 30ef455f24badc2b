"""The rollup job: recompute stale buckets of the 1-minute tier from raw samples and of the
1-hour tier from the 1-minute tier.

A write marks each minute it touches (`rollup_pending`, tier 1) in its own transaction. A pass
takes due marks with FOR UPDATE SKIP LOCKED and deletes them, then, in a later statement of the
same transaction (so it sees every write committed before the marks were taken), replaces the
tier rows of those buckets by aggregates of the finer data, and marks the hours it changed
(tier 2). A bucket is recomputed whole, never incremented, so resends, late samples, concurrent
replicas and a crash at any point never count anything twice: a crash rolls the transaction back
and leaves the marks for the next pass. A mark is due once its bucket has ended; a write into a
bucket after that marks it again.

A pass is bounded three ways, so none can run on without end or pile up behind another: each
statement has the maintenance statement_timeout; it takes at most `batch_size` marks, halved
after a pass that ran out of time and grown back after passes that did not; and one pass runs
at a time, per replica (a pass already running makes another call return at once) and across
replicas (a transaction-level `pg_try_advisory_xact_lock`: whoever holds it rolls up, the others
skip this round).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest_service.partitions import Partitions
from scout_kit.db import StatementTimeout, bounded_transaction

log = logging.getLogger(__name__)

# The marks taken are deleted by their row addresses (a TID scan of rows this statement has
# locked, so none moves meanwhile), not joined back on their key: the planner, which rarely has
# statistics of so short-lived a table, joined on rollup_pending_due (tier, bucket) and filtered
# by server, and every server's mark of one minute shares that key, so each of 2,000 marks
# scanned about half of 10,000 (150 ms rather than 4 ms a pass at 10,000 servers, measured).
_TAKE = """
DELETE FROM {s}.rollup_pending WHERE ctid = ANY(ARRAY(
  SELECT ctid FROM {s}.rollup_pending WHERE tier = %(tier)s AND bucket < %(before)s
  ORDER BY bucket LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
RETURNING server_id::text, bucket"""
# Every statement over a batch also bounds its time column by the batch's span, as constants
# (%(lo)s, %(hi)s): the planner then reads only the partitions of that span. A bound that comes
# only from the join is known at run time, and the plan spans every partition of the table: with
# a month kept and no statistics yet for the newest partitions, it scanned all of them per pass
# (a pass of 5,000 marks ran for minutes at 11 days of 100 servers, measured).
_CLEAR = """
DELETE FROM {s}.{target} t
USING unnest(%(servers)s::uuid[], %(buckets)s::timestamptz[]) AS d(server_id, bucket)
WHERE t.server_id = d.server_id AND t.bucket = d.bucket
  AND t.bucket >= %(lo)s AND t.bucket < %(hi)s"""
# A bucket's samples of one set as a 2-D array (every sample of a set has its length), then per
# metric min, max and sum over its column: small sorts per bucket instead of one of every value
# of the batch (1.5 times faster than unnesting and regrouping them). Each mark reads its own
# minute in a LATERAL subquery (an index range scan of its server's rows, grouped there): as a
# join on server_id with the minute as a filter, the planner merged on server_id alone when the
# servers were few and filtered every sample of the span against every mark (2,000 marks of
# 2 servers: 24 million pairs, 4.2 s; now 0.5 s, measured).
_FROM_RAW = """
INSERT INTO {s}.rollup_1m (server_id, bucket, set_id, n, mins, maxs, sums)
SELECT d.server_id, d.bucket, g.set_id, g.c, a.mins, a.maxs, a.sums
FROM unnest(%(servers)s::uuid[], %(buckets)s::timestamptz[]) AS d(server_id, bucket)
CROSS JOIN LATERAL (
  SELECT r.set_id, count(*) AS c, array_agg(r.vals) AS m
  FROM {s}.samples_raw r
  WHERE r.server_id = d.server_id
    AND r.ts >= d.bucket AND r.ts < d.bucket + interval '1 minute'
    AND r.ts >= %(lo)s AND r.ts < %(hi)s
  GROUP BY r.set_id
) g CROSS JOIN LATERAL (
  SELECT array_agg(mn ORDER BY j) AS mins, array_agg(mx ORDER BY j) AS maxs,
         array_agg(sm ORDER BY j) AS sums
  FROM (
    SELECT j, min(g.m[k][j]) AS mn, max(g.m[k][j]) AS mx, sum(g.m[k][j]) AS sm
    FROM generate_subscripts(g.m, 2) AS j CROSS JOIN generate_subscripts(g.m, 1) AS k
    GROUP BY j
  ) x
) a"""
# The hour tier from the minute tier, each mark's hour read the same way (OFFSET 0 keeps the
# subquery from being flattened back into that join).
_FROM_MINUTES = """
INSERT INTO {s}.rollup_1h (server_id, bucket, set_id, n, mins, maxs, sums)
SELECT server_id, bucket, set_id, max(c), array_agg(mn ORDER BY i), array_agg(mx ORDER BY i),
       array_agg(sm ORDER BY i)
FROM (
  SELECT d.server_id, d.bucket, t.set_id, u.i, sum(t.n) AS c, min(u.mn) AS mn, max(u.mx) AS mx,
         sum(u.sm) AS sm
  FROM unnest(%(servers)s::uuid[], %(buckets)s::timestamptz[]) AS d(server_id, bucket)
  CROSS JOIN LATERAL (
    SELECT t.set_id, t.n, t.mins, t.maxs, t.sums FROM {s}.rollup_1m t
    WHERE t.server_id = d.server_id
      AND t.bucket >= d.bucket AND t.bucket < d.bucket + interval '1 hour'
      AND t.bucket >= %(lo)s AND t.bucket < %(hi)s
    OFFSET 0
  ) t
  CROSS JOIN LATERAL unnest(t.mins, t.maxs, t.sums) WITH ORDINALITY AS u(mn, mx, sm, i)
  GROUP BY 1, 2, 3, 4
) x GROUP BY 1, 2, 3"""
# Same lock discipline as the write path: an existing mark is locked, not rewritten.
_MARK_HOURS = """
INSERT INTO {s}.rollup_pending (server_id, tier, bucket)
SELECT DISTINCT server_id, 2::int2, date_bin('1 hour', bucket, 'epoch'::timestamptz)
FROM unnest(%(servers)s::uuid[], %(buckets)s::timestamptz[]) AS d(server_id, bucket)
ORDER BY 1, 3
ON CONFLICT (server_id, tier, bucket) DO UPDATE SET tier = EXCLUDED.tier WHERE false"""


@dataclass(frozen=True)
class _Tier:
    number: int
    width: timedelta
    target: str
    recompute: str
    marks_next: bool


TIERS = (
    _Tier(1, timedelta(minutes=1), "rollup_1m", _FROM_RAW, True),
    _Tier(2, timedelta(hours=1), "rollup_1h", _FROM_MINUTES, False),
)


def batch_params(tier: _Tier, taken: list[tuple[str, datetime]]) -> dict[str, object]:
    """The parameters of a pass's statements over `taken` (server id, bucket) marks of `tier`."""
    buckets = [bucket for _, bucket in taken]
    return {
        "servers": [server for server, _ in taken],
        "buckets": buckets,
        "lo": min(buckets),
        "hi": max(buckets) + tier.width,
    }


class RollupJob:
    def __init__(self, partitions: Partitions, schema: str, *, batch_size: int = 2000) -> None:
        self._partitions = partitions
        self._schema = schema
        self._batch_size = batch_size
        self._limit = batch_size
        self._running = asyncio.Lock()
        self._lock_id = zlib.crc32(f"scout-rollup:{schema}".encode())

    @property
    def lock_id(self) -> int:
        """The advisory lock a pass holds: a session that holds it keeps every replica's
        passes from running (the bench's steady-state measure holds it)."""
        return self._lock_id

    @property
    def limit(self) -> int:
        """How many marks the next pass takes."""
        return self._limit

    def _sql(self, text: str, target: str = "") -> str:
        return text.replace("{s}", self._schema).replace("{target}", target)

    async def run_once(self, now: datetime) -> dict[int, int]:
        """Recompute every due bucket of every tier, finest first; buckets per tier (none while
        a pass of this replica or of another one is running)."""
        done = {tier.number: 0 for tier in TIERS}
        if self._running.locked():
            return done
        async with self._running:
            for tier in TIERS:
                while True:
                    limit = self._limit
                    count = await self._bounded_pass(tier, now, limit)
                    if count is None:
                        return done
                    done[tier.number] += count
                    if count < limit:
                        break
        if any(done.values()):
            log.debug("rollup recomputed %s", done)
        return done

    async def _bounded_pass(self, tier: _Tier, now: datetime, limit: int) -> int | None:
        try:
            count = await self._pass(tier, now, limit)
        except StatementTimeout:
            self._limit = max(1, limit // 2)
            log.warning(
                "a rollup pass of %d buckets ran out of time; next takes %d", limit, self._limit
            )
            raise
        self._limit = min(self._batch_size, max(self._limit, limit * 2))
        return count

    async def _pass(self, tier: _Tier, now: datetime, limit: int) -> int | None:
        """One transaction: take up to `limit` due marks of the tier and recompute their
        buckets; None when another replica holds the rollup lock."""
        async with bounded_transaction(
            self._partitions.pool, self._partitions.statement_timeout
        ) as cur:
            await cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (self._lock_id,))
            (mine,) = await cur.fetchone()
            if not mine:
                return None
            await cur.execute(
                self._sql(_TAKE),
                {"tier": tier.number, "before": now - tier.width, "limit": limit},
            )
            taken = await cur.fetchall()
            if not taken:
                return 0
            buckets = [bucket for _, bucket in taken]
            # The tier's partitions for these buckets (old data from the copier may predate
            # the window kept ahead).
            await self._partitions.ensure(tier.target, min(buckets), max(buckets))
            params = batch_params(tier, taken)
            await cur.execute(self._sql(_CLEAR, tier.target), params)
            await cur.execute(self._sql(tier.recompute), params)
            if tier.marks_next:
                await cur.execute(self._sql(_MARK_HOURS), params)
        return len(taken)
