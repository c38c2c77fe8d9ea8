-- Random data keys, each wrapped (AES-256-GCM) under the master key. One
-- encrypts private keys at rest, one keys the HMAC digests of secrets.
CREATE TABLE data_keys (
    purpose TEXT PRIMARY KEY,
    wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
