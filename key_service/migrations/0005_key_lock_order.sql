-- Row locks in one order, and no scan of every key a server ever had.
--
-- A rotation, a server's deletion and the gateways' usage reports all lock api_keys rows; each
-- now locks the rows it changes in key id order before changing them (keys.lock_live_keys, and
-- the usage statements of repository.py), so two of them that share keys wait for each other
-- and never deadlock. Usage reports are single statements, so a rotation waits for one at most
-- as long as that statement runs.
--
-- Every such lock is FOR NO KEY UPDATE, the lock an UPDATE of non-key columns takes anyway: it
-- excludes the other changes but not the foreign-key checks of rows that refer to the locked
-- one. The server's lock used to be FOR UPDATE, which a usage report's new activity row (its
-- check of activity.server_id) had to wait for while holding its keys: with a rotation that
-- held the server and waited for one of those keys, a deadlock.
--
-- The keys still inside a grace window are found by their own index: a rotation used to read
-- every key the server ever had (api_keys_server_idx), which grew with each rotation.
CREATE INDEX api_keys_ended_idx ON api_keys (server_id, valid_until) WHERE ended_reason IS NOT NULL;

-- Locks, in id order, every key of a server still accepted at p_now: its current key and any
-- in a grace window (each part found by its own index), i.e. every key a rotation or deletion
-- may end.
CREATE FUNCTION keys.lock_live_keys(p_server_id uuid, p_now timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM keys.api_keys k
    WHERE k.id IN (
        SELECT c.id FROM keys.api_keys c
        WHERE c.server_id = p_server_id AND c.ended_reason IS NULL
        UNION ALL
        SELECT g.id FROM keys.api_keys g
        WHERE g.server_id = p_server_id AND g.ended_reason IS NOT NULL AND g.valid_until > p_now
    )
    ORDER BY k.id
    FOR NO KEY UPDATE;
END
$$;

CREATE OR REPLACE FUNCTION keys.rotate_key(
    p_account_id uuid,
    p_server_id uuid,
    p_key_id uuid,
    p_key_sha256 bytea,
    p_hint text,
    p_actor text,
    p_address text,
    p_now timestamptz,
    p_grace_until timestamptz,
    p_activity_type text,
    p_details jsonb
) RETURNS TABLE (
    o_ended_ids text[],
    o_ended_digests bytea[],
    o_ended_valid_until timestamptz[],
    o_outbox_ids bigint[],
    o_id text,
    o_account_id text,
    o_name text,
    o_created_at timestamptz,
    o_key_hint text,
    o_key_created_at timestamptz,
    o_key_last_used_at timestamptz,
    o_key_last_used_address text,
    o_paused_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    v_ids uuid[];
    v_digests bytea[];
    v_until timestamptz[];
    v_old_id uuid;
    v_old_digest bytea;
    v_old_hint text;
    v_outbox bigint[];
BEGIN
    PERFORM 1 FROM keys.servers s
    WHERE s.id = p_server_id AND s.account_id = p_account_id AND s.deleted_at IS NULL
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM keys.lock_live_keys(p_server_id, p_now);
    WITH window_ended AS (
        UPDATE keys.api_keys k SET valid_until = p_now
        WHERE k.server_id = p_server_id AND k.ended_reason IS NOT NULL AND k.valid_until > p_now
        RETURNING k.id, k.key_sha256
    )
    SELECT coalesce(array_agg(w.id), '{}'), coalesce(array_agg(w.key_sha256), '{}')
    INTO v_ids, v_digests FROM window_ended w;
    v_until := array_fill(p_now, ARRAY[cardinality(v_ids)]);
    -- STRICT: a server without a current key is a broken invariant, not a rotation.
    UPDATE keys.api_keys k SET ended_reason = 'rotated', valid_until = p_grace_until
    WHERE k.server_id = p_server_id AND k.ended_reason IS NULL
    RETURNING k.id, k.key_sha256, k.hint INTO STRICT v_old_id, v_old_digest, v_old_hint;
    v_ids := v_ids || v_old_id;
    v_digests := v_digests || v_old_digest;
    v_until := v_until || p_grace_until;
    WITH queued AS (
        INSERT INTO keys.invalidation_outbox (key_id, key_sha256, server_id, reason, valid_until)
        SELECT u.key_id, u.digest, p_server_id, 'rotated', u.valid_until
        FROM unnest(v_ids, v_digests, v_until) AS u(key_id, digest, valid_until)
        RETURNING id
    )
    SELECT array_agg(q.id) INTO v_outbox FROM queued q;
    INSERT INTO keys.api_keys (id, server_id, account_id, key_sha256, hint, created_at, created_by)
    VALUES (p_key_id, p_server_id, p_account_id, p_key_sha256, p_hint, p_now, p_actor);
    INSERT INTO keys.activity
        (server_id, account_id, key_id, type, occurred_at, actor, client_address, key_hint, details)
    VALUES (
        p_server_id, p_account_id, p_key_id, p_activity_type, p_now, p_actor, p_address, p_hint,
        jsonb_build_object('old_key_hint', v_old_hint) || p_details
    );
    RETURN QUERY
    SELECT v_ids::text[], v_digests, v_until, v_outbox,
        s.id::text, s.account_id::text, s.name, s.created_at,
        k.hint, k.created_at, k.last_used_at, k.last_used_address, s.paused_at
    FROM keys.servers s
    JOIN keys.api_keys k ON k.server_id = s.id AND k.ended_reason IS NULL
    WHERE s.id = p_server_id;
END
$$;
