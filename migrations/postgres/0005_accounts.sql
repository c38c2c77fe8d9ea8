-- People who log in through the browser. `username` is stored normalised
-- (NFKC, lower case), so the unique index makes it case-insensitive.
CREATE TABLE users (
    id UUID PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    given_name TEXT,
    family_name TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    -- argon2id PHC string.
    password_hash TEXT NOT NULL,
    -- Failed logins since the last success, lockout or quiet window.
    failed_logins INTEGER NOT NULL DEFAULT 0,
    last_failed_at TIMESTAMPTZ,
    locked_until TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Browser sessions, keyed by the HMAC digest of the cookie value.
CREATE TABLE sessions (
    id_digest TEXT PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time TIMESTAMPTZ NOT NULL,
    -- Authentication methods (RFC 8176), space-separated.
    amr TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);

-- One pass of a browser through login and consent, created by the
-- authorization endpoint and completed by the pages.
CREATE TABLE login_transactions (
    id_digest TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_name TEXT NOT NULL,
    first_party BOOLEAN NOT NULL,
    scopes TEXT NOT NULL,
    return_path TEXT NOT NULL,
    csrf_digest TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    -- The outcome, NULL until the user approves or denies.
    decision TEXT,
    user_id UUID REFERENCES users (id) ON DELETE CASCADE,
    auth_time TIMESTAMPTZ,
    amr TEXT,
    granted_scopes TEXT
);
CREATE INDEX login_transactions_expires_at ON login_transactions (expires_at);

-- Scopes each user has approved for each client.
CREATE TABLE consents (
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Security-relevant events. Never holds a password, token or other secret.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    client_id TEXT,
    ip TEXT,
    request_id TEXT
);
CREATE INDEX audit_events_time ON audit_events (time);
