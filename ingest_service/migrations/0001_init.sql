-- Agent metric samples: one row per (server, metric, time). Resending a sample is a no-op.
CREATE TABLE samples (
    server_id uuid NOT NULL,
    name text NOT NULL,
    ts timestamptz NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (server_id, name, ts)
);
CREATE INDEX samples_ts_idx ON samples (ts);

CREATE TABLE servers_seen (
    server_id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    last_seen_at timestamptz NOT NULL
);
