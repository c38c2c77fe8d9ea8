-- Tessera's own signing and encryption keys. A key's state (next, current,
-- retired, removed) follows from these times and the clock, so every
-- instance computes the same state without further writes. The private key
-- is a JWK sealed with the data key for sealing; the kid is its associated
-- data. Times are Unix milliseconds.
CREATE TABLE jose_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    key_use TEXT NOT NULL CHECK (key_use IN ('sig', 'enc')),
    public_jwk TEXT NOT NULL,
    sealed_private_key BLOB NOT NULL,
    -- Published in the JWKS from this instant.
    created_at INTEGER NOT NULL,
    -- Becomes `current` (signs, or is encrypted to) at this instant.
    activates_at INTEGER NOT NULL,
    -- Stops being `current`; unset until a successor is scheduled.
    retires_at INTEGER,
    -- Leaves the JWKS; unset while `retires_at` is unset.
    removes_at INTEGER,
    -- Revoked keys leave the JWKS at once and verify nothing.
    revoked_at INTEGER
);

CREATE INDEX jose_keys_alg ON jose_keys (key_use, alg);
