-- Change counters that in-memory caches poll to notice writes by the CLI
-- or by another instance.
CREATE TABLE generations (
    topic TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Leases let exactly one instance perform a scheduled task (key rotation).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until TIMESTAMPTZ NOT NULL
);
