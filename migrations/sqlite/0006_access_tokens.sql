-- Every issued access token, so introspection and revocation work for
-- tokens the server cannot decrypt (they are encrypted to the resource
-- server). `digest` is the HMAC-SHA-256 of the token string. Times are
-- Unix milliseconds.
CREATE TABLE access_tokens (
    jti TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    grant_id TEXT,
    grant_type TEXT NOT NULL,
    audience TEXT NOT NULL,
    scope TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);
CREATE INDEX access_tokens_grant_id ON access_tokens (grant_id) WHERE grant_id IS NOT NULL;
