-- Packed raw samples: once a day of samples_raw is closed (older than the late-sample window,
-- rolled up, the old-table copier finished), ingest_service.compaction moves it here in one
-- transaction and drops its raw partition. One row per (server, hour, metric set): the hour's
-- sample times in order, and its values as a 2-D array [metric][sample], metric-major, so the
-- values of one metric are adjacent and TOAST compression finds the runs of constant and slowly
-- changing metrics. No write ever reaches a packed day (the late window refuses it).
CREATE TABLE samples_packed (
    server_id uuid NOT NULL,
    hour timestamptz NOT NULL,
    set_id bigint NOT NULL,
    ts timestamptz[] NOT NULL,
    vals float8[] NOT NULL,
    PRIMARY KEY (server_id, hour, set_id)
) PARTITION BY RANGE (hour);

-- lz4 where the server is built with it (faster to decompress than pglz), pglz otherwise.
-- Partitions take the columns' compression from here.
DO $$
BEGIN
    ALTER TABLE samples_packed ALTER COLUMN ts SET COMPRESSION lz4;
    ALTER TABLE samples_packed ALTER COLUMN vals SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;

-- Every stored value as a row, raw or packed (for people at a psql prompt and for tests).
CREATE OR REPLACE VIEW sample_values AS
    SELECT r.server_id, u.name, r.ts, u.value
    FROM samples_raw r
    JOIN metric_sets m ON m.server_id = r.server_id AND m.set_id = r.set_id
    CROSS JOIN LATERAL unnest(m.names, r.vals) AS u(name, value)
    UNION ALL
    SELECT p.server_id, m.names[j.j], t.ts, t.value
    FROM samples_packed p
    JOIN metric_sets m ON m.server_id = p.server_id AND m.set_id = p.set_id
    CROSS JOIN LATERAL generate_subscripts(p.vals, 1) AS j(j)
    CROSS JOIN LATERAL unnest(p.ts, p.vals[j.j:j.j][:]) AS t(ts, value);
