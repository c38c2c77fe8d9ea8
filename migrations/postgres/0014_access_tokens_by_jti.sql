-- Access-token records found by `jti` (the primary key), which tokens now
-- carry in their JWE header. The `jti` is a UUID of version 7, so new
-- records go to the end of the primary key's index, and the unique index
-- on the random `digest` goes. A record must still match the digest of
-- the presented token.
--
-- Tokens issued before this migration have no `jti` in their header:
-- their records read `lookup_by_digest` true (the column's first default,
-- which fills existing rows without rewriting them) and are found by
-- digest alone, through an index that holds only them.
ALTER TABLE access_tokens ADD COLUMN lookup_by_digest BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE access_tokens ALTER COLUMN lookup_by_digest SET DEFAULT FALSE;
ALTER TABLE access_tokens DROP CONSTRAINT access_tokens_digest_key;
CREATE UNIQUE INDEX access_tokens_digest ON access_tokens (digest) WHERE lookup_by_digest;
