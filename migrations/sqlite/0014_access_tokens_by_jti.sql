-- Access-token records found by `jti`, which tokens now carry in their
-- JWE header. The `jti` is a UUID of version 7, so new records go to
-- the end of its index, where the random digests of the unique index on
-- `digest` wrote one random page per token. A record must still match
-- the digest of the presented token.
--
-- Tokens without a `jti` in their header, issued before this migration
-- or by an older release still running beside a newer one, have records
-- marked `lookup_by_digest`: the column's default, which this release's
-- inserts override. Those records are found by digest alone, through an
-- index that holds only them, and leave it as they expire.
CREATE TABLE access_tokens_by_jti (
    jti TEXT NOT NULL UNIQUE,
    digest TEXT NOT NULL,
    client_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    grant_id TEXT,
    grant_type TEXT NOT NULL,
    audience TEXT NOT NULL,
    scope TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    lookup_by_digest INTEGER NOT NULL DEFAULT 1
);
INSERT INTO access_tokens_by_jti (jti, digest, client_id, subject, grant_id, grant_type,
    audience, scope, issued_at, expires_at, revoked_at)
SELECT jti, digest, client_id, subject, grant_id, grant_type, audience, scope, issued_at,
    expires_at, revoked_at
FROM access_tokens;
DROP TABLE access_tokens;
ALTER TABLE access_tokens_by_jti RENAME TO access_tokens;
CREATE UNIQUE INDEX access_tokens_digest ON access_tokens (digest) WHERE lookup_by_digest = 1;
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);
CREATE INDEX access_tokens_grant_id ON access_tokens (grant_id) WHERE grant_id IS NOT NULL;
