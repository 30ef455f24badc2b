-- Accounts and their users. A user belongs to exactly one account.
CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE users (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    email text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL,
    disabled_at timestamptz
);
CREATE UNIQUE INDEX users_email_idx ON users (lower(email));
CREATE INDEX users_account_idx ON users (account_id);
