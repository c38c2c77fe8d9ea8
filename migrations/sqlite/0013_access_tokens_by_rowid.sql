-- Access-token records without the primary key on `jti`. Each insert
-- wrote a random leaf page of that index besides one of the `digest`
-- index, and SQLite writes whole pages to the WAL: dropping it halves
-- the WAL written per token. `jti` stays unique by construction (256
-- random bits), and nothing looks a record up by it; `digest` keeps its
-- unique index, which introspection and revocation use.
CREATE TABLE access_tokens_by_rowid (
    jti TEXT NOT NULL,
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
INSERT INTO access_tokens_by_rowid (jti, digest, client_id, subject, grant_id, grant_type,
    audience, scope, issued_at, expires_at, revoked_at)
SELECT jti, digest, client_id, subject, grant_id, grant_type, audience, scope, issued_at,
    expires_at, revoked_at
FROM access_tokens;
DROP TABLE access_tokens;
ALTER TABLE access_tokens_by_rowid RENAME TO access_tokens;
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);
CREATE INDEX access_tokens_grant_id ON access_tokens (grant_id) WHERE grant_id IS NOT NULL;
