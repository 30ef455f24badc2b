-- What happened to a user's sign-ins and sessions, newest first per user (GET /auth/activity).
-- user_id is NULL for a failed login naming an unknown email; the email itself is not kept, as
-- people sometimes type a password into the email field.
CREATE TABLE activity (
    -- A sequence: listing pages newest first by id, so events of one instant keep their order.
    id bigserial PRIMARY KEY,
    user_id uuid REFERENCES users (id) ON DELETE CASCADE,
    account_id uuid REFERENCES accounts (id) ON DELETE CASCADE,
    type text NOT NULL CHECK (type IN (
        'login.succeeded', 'login.failed', 'logout', 'password.changed', 'session.revoked'
    )),
    occurred_at timestamptz NOT NULL,
    actor text NOT NULL DEFAULT '',
    client_address text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX activity_user_idx ON activity (user_id, id DESC);
