-- Time-series layout: one row per sample (a server's values at one time) instead of one per
-- value. Every key starts with server_id, the distribution column, and nothing on the write path
-- joins across servers, so each table can be distributed by server_id as it is.

-- The metric sets a server has posted: a sample stores the id of its set and its values in the
-- set's order, so twenty names cost one 8-byte id per sample. `digest` is sha256 of the names
-- joined by newlines (a set of 500 long names is too wide for a btree key).
CREATE TABLE metric_sets (
    server_id uuid NOT NULL,
    set_id bigint GENERATED ALWAYS AS IDENTITY,
    digest bytea NOT NULL,
    names text[] NOT NULL,
    PRIMARY KEY (server_id, set_id),
    UNIQUE (server_id, digest)
);

-- Raw samples, partitioned by day (the service creates partitions ahead and drops expired ones).
CREATE TABLE samples_raw (
    server_id uuid NOT NULL,
    ts timestamptz NOT NULL,
    set_id bigint NOT NULL,
    vals float8[] NOT NULL,
    PRIMARY KEY (server_id, ts)
) PARTITION BY RANGE (ts);

-- Rollup tiers: per server, bucket and metric set, the count of samples and per metric the
-- minimum, maximum and sum. Every metric of a set has the same count, so one count serves all.
CREATE TABLE rollup_1m (
    server_id uuid NOT NULL,
    bucket timestamptz NOT NULL,
    set_id bigint NOT NULL,
    n integer NOT NULL,
    mins float8[] NOT NULL,
    maxs float8[] NOT NULL,
    sums float8[] NOT NULL,
    PRIMARY KEY (server_id, bucket, set_id)
) PARTITION BY RANGE (bucket);

CREATE TABLE rollup_1h (LIKE rollup_1m) PARTITION BY RANGE (bucket);
ALTER TABLE rollup_1h ADD PRIMARY KEY (server_id, bucket, set_id);

-- Buckets whose tier rows are stale (tier 1: a minute of raw samples, tier 2: an hour of 1m
-- rows). A write marks the minutes it touches in its own transaction; the rollup job deletes a
-- mark and recomputes the bucket from the finer data in one transaction, so a bucket is exact in
-- its tier exactly when no mark exists for it, and recomputing never counts anything twice.
CREATE TABLE rollup_pending (
    server_id uuid NOT NULL,
    tier smallint NOT NULL,
    bucket timestamptz NOT NULL,
    PRIMARY KEY (server_id, tier, bucket)
);
CREATE INDEX rollup_pending_due ON rollup_pending (tier, bucket);

-- A resend that adds metrics to a stored sample: the stored values win, the new metrics are
-- appended, and the sample moves to the set of the union (created here if new).
CREATE FUNCTION merge_sample(
    p_server uuid, old_set bigint, old_vals float8[], new_set bigint, new_vals float8[]
) RETURNS TABLE (set_id bigint, vals float8[])
LANGUAGE plpgsql
-- Bound to the schema it was created in (whatever search_path the caller has).
SET search_path FROM CURRENT
AS $$
DECLARE
    old_names text[];
    new_names text[];
    merged_names text[];
    merged_vals float8[];
    merged_set bigint;
    merged_digest bytea;
BEGIN
    SELECT s.names INTO old_names FROM metric_sets s
        WHERE s.server_id = p_server AND s.set_id = old_set;
    SELECT s.names INTO new_names FROM metric_sets s
        WHERE s.server_id = p_server AND s.set_id = new_set;
    merged_names := old_names;
    merged_vals := old_vals;
    FOR i IN 1 .. coalesce(array_length(new_names, 1), 0) LOOP
        IF NOT new_names[i] = ANY (old_names) THEN
            merged_names := merged_names || new_names[i];
            merged_vals := merged_vals || new_vals[i];
        END IF;
    END LOOP;
    IF array_length(merged_names, 1) = array_length(old_names, 1) THEN
        RETURN QUERY SELECT old_set, old_vals;
        RETURN;
    END IF;
    merged_digest := sha256(convert_to(array_to_string(merged_names, E'\n'), 'UTF8'));
    INSERT INTO metric_sets AS m (server_id, digest, names)
        VALUES (p_server, merged_digest, merged_names)
        ON CONFLICT (server_id, digest) DO NOTHING
        RETURNING m.set_id INTO merged_set;
    IF merged_set IS NULL THEN
        SELECT m.set_id INTO merged_set FROM metric_sets m
            WHERE m.server_id = p_server AND m.digest = merged_digest;
    END IF;
    RETURN QUERY SELECT merged_set, merged_vals;
END
$$;

-- Every stored value as a row, for people at a psql prompt and for tests (never the hot path).
CREATE VIEW sample_values AS
    SELECT r.server_id, u.name, r.ts, u.value
    FROM samples_raw r
    JOIN metric_sets m ON m.server_id = r.server_id AND m.set_id = r.set_id
    CROSS JOIN LATERAL unnest(m.names, r.vals) AS u(name, value);

-- Moving the old one-row-per-value table: the copier (ingest_service.copier) moves it slice by
-- slice in time, each slice in one transaction with its cursor, then drops it. An empty table
-- (a new installation) is dropped here.
CREATE TABLE samples_migration (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    next_ts timestamptz,
    moved bigint NOT NULL DEFAULT 0,
    done boolean NOT NULL DEFAULT false
);
INSERT INTO samples_migration DEFAULT VALUES;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM samples LIMIT 1) THEN
        DROP TABLE samples;
        UPDATE samples_migration SET done = true;
    END IF;
END
$$;
