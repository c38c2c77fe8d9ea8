-- `jti`s of accepted private_key_jwt client assertions, kept until the
-- assertion expires so that each is used once (RFC 7523 section 3).
CREATE TABLE assertion_jtis (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_expires_at ON assertion_jtis (expires_at);
