-- Authorization requests waiting for the browser to come back from login
-- and consent. `id_digest` is the HMAC digest of the id in the return
-- path; `tx_digest` that of the login transaction.
CREATE TABLE authorization_requests (
    id_digest TEXT PRIMARY KEY,
    tx_digest TEXT NOT NULL,
    client_id TEXT NOT NULL,
    request TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX authorization_requests_expires_at ON authorization_requests (expires_at);

-- One authorization of a client by a user: the code, and the refresh and
-- access tokens that descend from it, share its id.
CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id UUID NOT NULL,
    scopes TEXT NOT NULL,
    resource TEXT,
    auth_time TIMESTAMPTZ NOT NULL,
    amr TEXT NOT NULL,
    sid TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX grants_client_id ON grants (client_id);
CREATE INDEX grants_user_id ON grants (user_id);

CREATE TABLE authorization_codes (
    digest TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT,
    nonce TEXT,
    expires_at TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    digest TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    issued_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    rotated_at TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
