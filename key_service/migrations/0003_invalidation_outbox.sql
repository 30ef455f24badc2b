-- Invalidations not yet confirmed on every gateway: a transactional outbox. A change that ends
-- keys writes them here in its own transaction and deletes them once their invalidation was
-- published and waited for. What is left (Redis out of the key service's reach, a replica that
-- died between its commit and its publication) any replica's relay publishes, so no ended key
-- depends on one process's memory.
CREATE TABLE invalidation_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id uuid NOT NULL,
    key_sha256 bytea NOT NULL,
    server_id uuid NOT NULL,
    reason text NOT NULL,
    valid_until timestamptz NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
