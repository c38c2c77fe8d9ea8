-- Access-token records found by `jti` (the primary key), which tokens now
-- carry in their JWE header. The `jti` is a UUID of version 7, so new
-- records go to the end of the primary key's index, and the unique index
-- on the random `digest` goes. A record must still match the digest of
-- the presented token.
--
-- Tokens without a `jti` in their header, issued before this migration
-- or by an older release still running beside a newer one, have records
-- marked `lookup_by_digest`: the column's default, which this release's
-- inserts override. Those records are found by digest alone, through an
-- index that holds only them, and leave it as they expire.
ALTER TABLE access_tokens ADD COLUMN lookup_by_digest BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE access_tokens DROP CONSTRAINT access_tokens_digest_key;
CREATE UNIQUE INDEX access_tokens_digest ON access_tokens (digest) WHERE lookup_by_digest;
