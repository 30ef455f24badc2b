-- Servers and their API keys. A key is stored only as its SHA-256 and a 4-character hint.
CREATE TABLE servers (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    deleted_at timestamptz
);
CREATE INDEX servers_account_idx ON servers (account_id, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    server_id uuid NOT NULL REFERENCES servers (id),
    account_id uuid NOT NULL,
    key_sha256 bytea NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    hint text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    -- NULL while the key is the server's current key; set when it is rotated or revoked.
    ended_reason text CHECK (ended_reason IN ('rotated', 'revoked')),
    -- When an ended key stops being accepted: the end time, or later for a rotation grace window.
    valid_until timestamptz,
    last_used_at timestamptz,
    last_used_address text,
    use_count bigint NOT NULL DEFAULT 0,
    last_rejected_at timestamptz,
    rejected_count bigint NOT NULL DEFAULT 0,
    CHECK ((ended_reason IS NULL) = (valid_until IS NULL))
);
-- At most one current key per server.
CREATE UNIQUE INDEX api_keys_current_idx ON api_keys (server_id) WHERE ended_reason IS NULL;
CREATE INDEX api_keys_server_idx ON api_keys (server_id, created_at DESC);

CREATE TABLE activity (
    id bigserial PRIMARY KEY,
    server_id uuid NOT NULL REFERENCES servers (id),
    account_id uuid NOT NULL,
    key_id uuid REFERENCES api_keys (id),
    type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor text NOT NULL DEFAULT '',
    client_address text NOT NULL DEFAULT '',
    key_hint text NOT NULL DEFAULT '',
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX activity_server_idx ON activity (server_id, occurred_at DESC, id DESC);
-- key.used and key.rejected are one rolling row per key, moved forward as use continues.
CREATE UNIQUE INDEX activity_rolling_idx ON activity (key_id, type)
    WHERE type IN ('key.used', 'key.rejected');
