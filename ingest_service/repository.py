"""PostgreSQL access for samples (schema `ingest`): the write of a group commit, and the reads.

A sample is one row (server, ts, set_id, vals): `set_id` names the server's metric set (the
ordered names, `metric_sets`) and `vals` holds the values in that order. Closed days are packed
(ingest_service.compaction) into `samples_packed`, one row per server, hour and set; every read
of raw samples reads both. Writes are one statement
(one implicit transaction): insert the rows, merge a resend that adds metrics, mark the touched
minutes for the rollup job, keep `servers_seen`. Reads combine the coarsest rollup tier that
serves the step with finer data wherever the tier is not final (see query_plan).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiopg

from ingest_service.query_plan import HOUR, Plan
from ingest_service.samples import Write
from scout_kit.cursor import Cursor
from scout_kit.db import UNKNOWN_STATEMENT, PreparedStatement, ReadPools, cursor

SCHEMA = "ingest"

# Transient conflicts between concurrent group commits (two replicas storing the same resent
# samples): PostgreSQL aborts one transaction, which is simply run again.
RETRYABLE = frozenset({"40P01", "40001"})
# A row for which no partition exists (check_violation from tuple routing).
NO_PARTITION = "23514"
_ATTEMPTS = 3
_SET_CACHE_LIMIT = 100_000
_LATEST_WINDOW = 2000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Array parameters are sent as literals built here: psycopg2 adapts list elements one by one in
# Python, which costs more than the rest of a group commit. Names are validated to
# [A-Za-z0-9_.:/-] (no quote, backslash or comma), so quoting each is enough.
_WRITE = """
WITH x AS (
  SELECT (%(servers)s::uuid[])[u.s] AS server_id,
         'epoch'::timestamptz + u.t * interval '1 microsecond' AS ts,
         u.k AS set_id, (%(vals)s::float8[])[u.o : u.o + u.n - 1] AS vals
  FROM unnest(%(si)s::int4[], %(ts)s::int8[], %(sets)s::int8[], %(off)s::int4[], %(len)s::int4[])
    AS u(s, t, k, o, n)
), ins AS (
  INSERT INTO {s}.samples_raw AS r (server_id, ts, set_id, vals)
  SELECT server_id, ts, set_id, vals FROM x
  ON CONFLICT (server_id, ts) DO UPDATE SET (set_id, vals) = (
    SELECT m.set_id, m.vals FROM {s}.merge_sample(
      r.server_id, r.set_id, r.vals, EXCLUDED.set_id, EXCLUDED.vals) m)
  WHERE r.set_id <> EXCLUDED.set_id
  RETURNING server_id, ts
), marks AS (
  -- DO UPDATE ... WHERE false writes nothing but locks an existing mark until commit, so the
  -- rollup job (FOR UPDATE SKIP LOCKED) never takes a mark whose samples are not committed.
  INSERT INTO {s}.rollup_pending (server_id, tier, bucket)
  SELECT DISTINCT server_id, 1::int2, date_bin('1 minute', ts, 'epoch'::timestamptz)
  FROM ins ORDER BY 1, 3
  ON CONFLICT (server_id, tier, bucket) DO UPDATE SET tier = EXCLUDED.tier WHERE false
)"""
# One row per server per group commit; a server never changes account. Sorted, so concurrent
# commits take the row locks in the same order.
_SEEN = """, seen AS (
  INSERT INTO {s}.servers_seen (server_id, account_id, last_seen_at)
  SELECT s, a, %(seen_at)s
  FROM unnest(%(seen_servers)s::uuid[], %(seen_accounts)s::uuid[]) AS x(s, a)
  ON CONFLICT (server_id) DO UPDATE
  SET last_seen_at = GREATEST(servers_seen.last_seen_at, EXCLUDED.last_seen_at)
)"""
_WRITE_END = " SELECT count(*) FROM ins"
# The write's parameters in PostgreSQL types, for its prepared form.
_WRITE_TYPES = {
    "servers": "uuid[]",
    "si": "int4[]",
    "ts": "int8[]",
    "sets": "int8[]",
    "off": "int4[]",
    "len": "int4[]",
    "vals": "float8[]",
    "seen_at": "timestamptz",
    "seen_servers": "uuid[]",
    "seen_accounts": "uuid[]",
}

_SETS = """
WITH w AS (
  SELECT (%(servers)s::uuid[])[u.s] AS server_id, u.d AS digest,
         (%(names)s::text[])[u.o : u.o + u.n - 1] AS names
  FROM unnest(%(si)s::int4[], %(digests)s::bytea[], %(off)s::int4[], %(len)s::int4[])
    AS u(s, d, o, n)
), ins AS (
  INSERT INTO {s}.metric_sets (server_id, digest, names) SELECT * FROM w
  ON CONFLICT (server_id, digest) DO NOTHING RETURNING server_id, digest, set_id
)
SELECT server_id::text, digest, set_id FROM ins
UNION ALL
SELECT m.server_id::text, m.digest, m.set_id FROM {s}.metric_sets m JOIN w USING (server_id, digest)
"""

# Only servers of the caller's account; every server with samples has a servers_seen row,
# written in the same transaction as its first samples.
_OWNED = (
    "EXISTS (SELECT 1 FROM {s}.servers_seen o"
    " WHERE o.server_id = %(server)s AND o.account_id = %(account)s)"
)
_PENDING = (
    "SELECT tier, bucket FROM {s}.rollup_pending WHERE server_id = %(server)s"
    " AND bucket >= %(start)s - interval '1 hour' AND bucket < %(end)s"
)
# Partial aggregates per (name, query bucket) from each source over its intervals; the outer
# query combines them. `pos` is each wanted name's position in each of the server's sets, so a
# row costs one subscript per wanted name rather than unnesting all of its arrays. LATERAL makes
# each interval its own index range scan, so only the partitions an interval touches are read
# (an interval list spans the whole query range); OFFSET 0 keeps the planner from flattening it
# into one scan of all the server's rows. MATERIALIZED: a query of one source names `pos` once,
# and PostgreSQL would then inline it, unnesting each set's names again for every row it reads
# (a 30-day minute-tier chart took 480 ms rather than 70 ms that way).
_POSITIONS = """
WITH pos AS MATERIALIZED (
  SELECT m.set_id, u.n, u.i::int4 AS i FROM {s}.metric_sets m
  CROSS JOIN LATERAL unnest(m.names) WITH ORDINALITY AS u(n, i)
  WHERE m.server_id = %(server)s AND u.n = ANY(%(names)s::text[])
)"""
# Each part yields one row per (wanted name, source row): (name, query bucket, min, max, sum,
# count), a raw value being its own min, max and sum with a count of 1. The arrays are subscripted
# before anything sorts (the inner OFFSET 0 keeps that order): a sort of whole rows would carry
# every array once per wanted name (a 30-day chart of the minute tier sorted 100 MB on disk that
# way). The parts are grouped once, together: grouping each part and then the parts again sorted
# and aggregated every row twice (a 30-day hourly chart took 55 ms rather than 38 that way,
# measured). The constant bounds (the first interval's start, the last's end) let the planner
# prune partitions when it plans: the LATERAL bounds prune only as it runs, and planning every
# partition of the three tables cost more than reading a chart's rows.
# Raw samples are in samples_raw or, for closed days, packed by hour in samples_packed (never
# both): a packed row is read for each interval it overlaps, each wanted metric's values sliced
# out once (one decompression per row and metric) and unnested with the hour's times.
_RAW_PART = """
  (SELECT p.n, date_bin(%(step)s, r.ts, 'epoch'::timestamptz) AS b, r.vals[p.i] AS v
    FROM unnest(%(raw_lo)s::timestamptz[], %(raw_hi)s::timestamptz[]) AS iv(lo, hi)
    CROSS JOIN LATERAL (SELECT ts, set_id, vals FROM {s}.samples_raw
      WHERE server_id = %(server)s AND ts >= iv.lo AND ts < iv.hi
        AND ts >= %(raw_first)s AND ts < %(raw_last)s OFFSET 0) r
    JOIN pos p ON p.set_id = r.set_id OFFSET 0
  ) UNION ALL (
    SELECT p.n, date_bin(%(step)s, u.ts, 'epoch'::timestamptz), u.v
    FROM unnest(%(raw_lo)s::timestamptz[], %(raw_hi)s::timestamptz[]) AS iv(lo, hi)
    CROSS JOIN LATERAL (SELECT set_id, ts, vals FROM {s}.samples_packed
      WHERE server_id = %(server)s AND hour > iv.lo - interval '1 hour' AND hour < iv.hi
        AND hour >= %(raw_hour_first)s AND hour < %(raw_last)s OFFSET 0) k
    JOIN pos p ON p.set_id = k.set_id
    CROSS JOIN LATERAL unnest(k.ts, k.vals[p.i:p.i][:]) AS u(ts, v)
    WHERE u.ts >= iv.lo AND u.ts < iv.hi OFFSET 0
  )"""
_TIER_PART = """
  (SELECT p.n, date_bin(%(step)s, t.bucket, 'epoch'::timestamptz) AS b, t.mins[p.i] AS mn,
           t.maxs[p.i] AS mx, t.sums[p.i] AS sm, t.n AS c
    FROM unnest(%({p}_lo)s::timestamptz[], %({p}_hi)s::timestamptz[]) AS iv(lo, hi)
    CROSS JOIN LATERAL (SELECT bucket, set_id, n, mins, maxs, sums FROM {s}.{table}
      WHERE server_id = %(server)s AND bucket >= iv.lo AND bucket < iv.hi
        AND bucket >= %({p}_first)s AND bucket < %({p}_last)s OFFSET 0) t
    JOIN pos p ON p.set_id = t.set_id OFFSET 0)"""
_PARTS = {
    "raw": "\n  (SELECT n, b, v, v, v, 1 FROM (" + _RAW_PART + ") x)",
    "m1": _TIER_PART.replace("{p}", "m1").replace("{table}", "rollup_1m"),
    "h1": _TIER_PART.replace("{p}", "h1").replace("{table}", "rollup_1h"),
}

# The inner query's rows come out of its GroupAggregate in (name, bucket) order and array_agg
# keeps the order of its input, so the arrays are in time order without a sort per aggregate
# (PostgreSQL 15 sorts each ORDER BY aggregate's input again).
_SERIES_HEAD = """
SELECT n, array_agg(us), array_agg(a), array_agg(mn), array_agg(mx), array_agg(c) FROM (
  SELECT q.n, (extract(epoch FROM q.b) * 1000000)::int8 AS us, sum(q.sm) / sum(q.c) AS a,
         min(q.mn) AS mn, max(q.mx) AS mx, sum(q.c)::int8 AS c FROM ("""


def _buckets_sql(parts: Sequence[str]) -> str:
    """The chart query over the given sources only (those the plan has intervals for), so the
    planner never plans a table the answer does not read. One row per name, its buckets as
    parallel arrays in time order (bucket starts in microseconds since the epoch): a few rows of
    arrays cost far less to send and to parse than a row per bucket."""
    return (
        _POSITIONS
        + _SERIES_HEAD
        + " UNION ALL ".join(_PARTS[part] for part in parts)
        + ") AS q(n, b, mn, mx, sm, c) WHERE "
        + _OWNED
        + " GROUP BY q.n, q.b ORDER BY q.n, q.b) AS per_bucket GROUP BY n ORDER BY n"
    )


_NAMES = (
    "SELECT DISTINCT u.n FROM {s}.metric_sets m CROSS JOIN LATERAL unnest(m.names) AS u(n)"
    " WHERE m.server_id = %(server)s AND " + _OWNED + " ORDER BY 1"
)
# The newest value of each name among the newest rows, then for sets not among them their own
# newest sample, raw or packed (rare: a set the agent no longer sends, or a server silent since
# before the late-sample window).
_LATEST_RECENT = """
SELECT DISTINCT ON (u.n) u.n, u.v, r.ts, r.set_id
FROM (SELECT ts, set_id, vals FROM {s}.samples_raw WHERE server_id = %(server)s
      ORDER BY ts DESC LIMIT %(window)s) r
JOIN {s}.metric_sets m ON m.server_id = %(server)s AND m.set_id = r.set_id
CROSS JOIN LATERAL unnest(m.names, r.vals) AS u(n, v)
ORDER BY u.n, r.ts DESC"""
_LATEST_OF_SETS = """
SELECT u.n, u.v, l.ts FROM unnest(%(sets)s::int8[]) AS k(set_id)
CROSS JOIN LATERAL (SELECT ts, vals FROM ((SELECT ts, vals FROM {s}.samples_raw
  WHERE server_id = %(server)s AND set_id = k.set_id ORDER BY ts DESC LIMIT 1)
  UNION ALL
  (SELECT q.ts[cardinality(q.ts)], ARRAY(SELECT q.vals[j][cardinality(q.ts)]
     FROM generate_subscripts(q.vals, 1) AS j ORDER BY j)
   FROM {s}.samples_packed q WHERE q.server_id = %(server)s AND q.set_id = k.set_id
   ORDER BY q.hour DESC LIMIT 1)) b ORDER BY ts DESC LIMIT 1) l
JOIN {s}.metric_sets m ON m.server_id = %(server)s AND m.set_id = k.set_id
CROSS JOIN LATERAL unnest(m.names, l.vals) AS u(n, v)"""


def _array(items: Sequence[str]) -> str:
    """Text an array element takes unquoted (UUIDs)."""
    return "{" + ",".join(items) + "}"


def _text_array(items: Sequence[str]) -> str:
    return '{"' + '","'.join(items) + '"}' if items else "{}"


def _int_array(items: list[int]) -> str:
    return "{" + repr(items)[1:-1] + "}"


def _float_array(items: list[float]) -> str:
    """A list's repr is its floats' reprs joined by ", " in one C call (PostgreSQL ignores the
    spaces): the shortest text that reads back as the same double (-0.0 and subnormals
    included), a third to half cheaper than joining them one by one. Values are finite here
    (ingest_service.samples refuses the rest)."""
    return "{" + repr(items)[1:-1] + "}"


def set_digest(names: Sequence[str]) -> bytes:
    """The key of a metric set; merge_sample (SQL) computes the same one."""
    return hashlib.sha256("\n".join(names).encode()).digest()


@dataclass(frozen=True)
class SeriesBuckets:
    """One metric's buckets as columns in time order: bucket i starts at starts[i]
    (microseconds since the epoch) and has avg[i], min[i], max[i] and count[i]."""

    name: str
    starts: list[int]
    avg: list[float]
    min: list[float]
    max: list[float]
    count: list[int]


@dataclass
class _Rows:
    """A group commit as columns, one entry per (server, ts)."""

    servers: dict[str, int]
    server_index: list[int]
    stamps: list[int]
    set_keys: list[tuple[str, tuple[str, ...]]]
    offsets: list[int]
    lengths: list[int]
    values: list[float]


def _rows(writes: Sequence[Write]) -> _Rows:
    """Flatten the writes; a (server, ts) given twice in the group becomes one row, the first
    value of each metric winning, as it would against a stored sample."""
    rows = _Rows({}, [], [], [], [], [], [])
    where: dict[tuple[int, int], int] = {}
    for write in writes:
        server = rows.servers.setdefault(write.server_id, len(rows.servers) + 1)
        offset = len(rows.values) + 1
        rows.values.extend(write.values)
        start = 0
        for stamp, size in zip(write.stamps, write.sizes, strict=True):
            names = tuple(write.names[start : start + size])
            seen = where.get((server, stamp))
            if seen is None:
                where[server, stamp] = len(rows.stamps)
                rows.server_index.append(server)
                rows.stamps.append(stamp)
                rows.set_keys.append((write.server_id, names))
                rows.offsets.append(offset + start)
                rows.lengths.append(size)
            else:
                _merge_into(rows, seen, names, write.values[start : start + size])
            start += size
    return rows


def _merge_into(rows: _Rows, index: int, names: tuple[str, ...], values: list[float]) -> None:
    server_id, old_names = rows.set_keys[index]
    first = rows.offsets[index] - 1
    old_values = rows.values[first : first + rows.lengths[index]]
    known = set(old_names)
    added = [(n, v) for n, v in zip(names, values, strict=True) if n not in known]
    if not added:
        return
    merged_names = old_names + tuple(n for n, _ in added)
    rows.set_keys[index] = (server_id, merged_names)
    rows.offsets[index] = len(rows.values) + 1
    rows.lengths[index] = len(merged_names)
    rows.values.extend(old_values + [v for _, v in added])


class SampleRepository:
    def __init__(
        self, pool: aiopg.Pool, schema: str = SCHEMA, *, reads: ReadPools | None = None
    ) -> None:
        self._pool = pool
        # Metric queries may be served by a read replica of bounded staleness.
        self._reads = reads or ReadPools(pool)
        self.schema = schema
        self._set_ids: dict[tuple[str, tuple[str, ...]], int] = {}
        self._write = PreparedStatement(
            (_WRITE + _SEEN + _WRITE_END).replace("{s}", schema), _WRITE_TYPES
        )
        self._move_sql = (_WRITE + _WRITE_END).replace("{s}", schema)
        self._sets_sql = _SETS.replace("{s}", schema)
        self._pending_sql = _PENDING.replace("{s}", schema)
        self._buckets_sql = {
            parts: _buckets_sql(parts).replace("{s}", schema)
            for size in range(1, len(_PARTS) + 1)
            for parts in itertools.combinations(_PARTS, size)
        }
        self._names_sql = _NAMES.replace("{s}", schema)
        self._latest_recent_sql = _LATEST_RECENT.replace("{s}", schema)
        self._latest_sets_sql = _LATEST_OF_SETS.replace("{s}", schema)

    @property
    def pool(self) -> aiopg.Pool:
        return self._pool

    async def write(self, writes: Sequence[Write], seen_at: datetime) -> int:
        """Store every write in one transaction (a group commit); returns the rows inserted or
        extended (a sample already stored with all its metrics is skipped)."""
        rows = _rows(writes)
        params = await self._params(rows)
        accounts = sorted({w.server_id: w.account_id for w in writes}.items())
        params["seen_at"] = seen_at
        params["seen_servers"] = _array([s for s, _ in accounts])
        params["seen_accounts"] = _array([a for _, a in accounts])
        return await self._execute_write(params)

    async def move(self, cur: Cursor, writes: Sequence[Write]) -> int:
        """Like write, without touching servers_seen, on the caller's cursor (inside the
        migration copier's transaction)."""
        await cur.execute(self._move_sql, await self._params(_rows(writes)))
        row = await cur.fetchone()
        return row[0] if row is not None and isinstance(row[0], int) else 0

    async def _params(self, rows: _Rows) -> dict[str, object]:
        set_ids = await self._resolve_sets(rows.set_keys)
        return {
            "servers": _array(list(rows.servers)),
            "si": _int_array(rows.server_index),
            "ts": _int_array(rows.stamps),
            "sets": _int_array(set_ids),
            "off": _int_array(rows.offsets),
            "len": _int_array(rows.lengths),
            "vals": _float_array(rows.values),
        }

    async def _execute_write(self, params: dict[str, object]) -> int:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                # One statement, so one implicit transaction: all of it is committed together
                # or not at all.
                async with cursor(self._pool) as cur:
                    await self._write.execute(cur, params)
                    row = await cur.fetchone()
                    return int(row[0]) if row else 0
            except Exception as exc:
                code = getattr(exc, "pgcode", None)
                if (code not in RETRYABLE and code != UNKNOWN_STATEMENT) or attempt == _ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _resolve_sets(self, keys: list[tuple[str, tuple[str, ...]]]) -> list[int]:
        missing = list(dict.fromkeys(k for k in keys if k not in self._set_ids))
        for _ in range(_ATTEMPTS):
            if not missing:
                break
            await self._fetch_sets(missing)
            missing = [k for k in missing if k not in self._set_ids]
        if missing:
            raise RuntimeError("metric sets could not be stored")
        return [self._set_ids[k] for k in keys]

    async def _fetch_sets(self, keys: list[tuple[str, tuple[str, ...]]]) -> None:
        """Find or create the sets (an unused set left by a failed commit is harmless)."""
        if len(self._set_ids) > _SET_CACHE_LIMIT:
            self._set_ids.clear()
        servers: dict[str, int] = {}
        index: list[int] = []
        digests: list[bytes] = []
        offsets: list[int] = []
        lengths: list[int] = []
        names: list[str] = []
        by_digest: dict[tuple[str, bytes], tuple[str, tuple[str, ...]]] = {}
        for server_id, set_names in keys:
            index.append(servers.setdefault(server_id, len(servers) + 1))
            digest = set_digest(set_names)
            by_digest[server_id, digest] = (server_id, set_names)
            digests.append(digest)
            offsets.append(len(names) + 1)
            lengths.append(len(set_names))
            names.extend(set_names)
        async with cursor(self._pool) as cur:
            await cur.execute(
                self._sets_sql,
                {
                    "servers": _array(list(servers)),
                    "si": _int_array(index),
                    "digests": digests,
                    "off": _int_array(offsets),
                    "len": _int_array(lengths),
                    "names": _text_array(names),
                },
            )
            for server_id, digest, set_id in await cur.fetchall():
                key = by_digest.get((server_id, bytes(digest)))
                if key is not None:
                    self._set_ids[key] = set_id

    async def last_seen(self, account_id: str, server_ids: list[str]) -> dict[str, datetime]:
        async with cursor(self._pool) as cur:
            await cur.execute(
                f"SELECT server_id::text, last_seen_at FROM {self.schema}.servers_seen"
                " WHERE account_id = %s AND server_id = ANY(%s::uuid[])",
                (account_id, server_ids),
            )
            return {row[0]: row[1] for row in await cur.fetchall()}

    async def metric_names(self, server_id: str, account_id: str) -> list[str]:
        async with cursor(self._pool) as cur:
            await cur.execute(self._names_sql, {"server": server_id, "account": account_id})
            return [row[0] for row in await cur.fetchall()]

    async def latest(self, server_id: str, account_id: str) -> list[tuple[str, float, datetime]]:
        """The newest value of every metric the server still has raw samples of."""
        names = await self.metric_names(server_id, account_id)
        if not names:
            return []
        params: dict[str, object] = {"server": server_id, "window": _LATEST_WINDOW}
        async with cursor(self._pool) as cur:
            await cur.execute(self._latest_recent_sql, params)
            found = {n: (v, ts) for n, v, ts, _ in await cur.fetchall()}
            if len(found) < len(names):
                await cur.execute(
                    f"SELECT set_id FROM {self.schema}.metric_sets WHERE server_id = %s"
                    " AND NOT names <@ %s::text[]",
                    (server_id, list(found)),
                )
                sets = [row[0] for row in await cur.fetchall()]
                await cur.execute(self._latest_sets_sql, {**params, "sets": sets})
                for name, value, ts in await cur.fetchall():
                    if name not in found or found[name][1] < ts:
                        found[name] = (value, ts)
        return [(name, *found[name]) for name in sorted(found)]

    async def pending(
        self, server_id: str, start: datetime, end: datetime
    ) -> list[tuple[int, int]]:
        """(tier, bucket start in microseconds) of the server's stale buckets near the range."""
        async with cursor(self._pool) as cur:
            await cur.execute(self._pending_sql, {"server": server_id, "start": start, "end": end})
            return [(tier, _micros(bucket)) for tier, bucket in await cur.fetchall()]

    async def buckets(
        self,
        server_id: str,
        account_id: str,
        names: list[str],
        step_seconds: int,
        plan_for: Callable[[list[tuple[int, int]]], Plan],
        start: datetime,
        end: datetime,
    ) -> list[SeriesBuckets]:
        """avg/min/max/count per name (in name order, a name without samples left out) and
        epoch-aligned bucket for start <= ts < end, read in one snapshot: the stale buckets
        first, then each source over the plan's intervals."""
        pool = await self._reads.for_lagging_read()
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                # A chart is a few thousand small rows: parallel workers cost more than they save.
                # The lock on samples_raw comes before the snapshot: a day being packed is then
                # either still raw or already packed in it (dropping a partition locks its
                # parent), never gone from both.
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                f" LOCK TABLE ONLY {self.schema}.samples_raw IN ACCESS SHARE MODE;"
                " SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL work_mem = '32MB'; "
                + self._pending_sql,
                {"server": server_id, "start": start, "end": end},
            )
            try:
                stale = [(tier, _micros(bucket)) for tier, bucket in await cur.fetchall()]
                plan = plan_for(stale)
                params: dict[str, object] = {
                    "server": server_id,
                    "account": account_id,
                    "names": names,
                    "step": timedelta(seconds=step_seconds),
                }
                parts: list[str] = []
                for part, intervals in (("raw", plan.raw), ("m1", plan.m1), ("h1", plan.h1)):
                    if not intervals:
                        continue
                    parts.append(part)
                    params[f"{part}_lo"] = [_at(lo) for lo, _ in intervals]
                    params[f"{part}_hi"] = [_at(hi) for _, hi in intervals]
                    params[f"{part}_first"] = _at(min(lo for lo, _ in intervals))
                    params[f"{part}_last"] = _at(max(hi for _, hi in intervals))
                if plan.raw:
                    # The hour of the first raw time: the first packed row that may hold it.
                    params["raw_hour_first"] = _at(min(lo for lo, _ in plan.raw) // HOUR * HOUR)
                await cur.execute(self._buckets_sql[tuple(parts)], params)
                rows = [SeriesBuckets(*row) for row in await cur.fetchall()]
            finally:
                if not conn.closed:
                    await cur.execute("COMMIT")
        return rows


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)
