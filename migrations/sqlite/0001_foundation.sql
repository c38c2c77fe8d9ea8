-- Change counters that in-memory caches poll to notice writes by the CLI
-- or by another instance.
CREATE TABLE generations (
    topic TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Leases let exactly one instance perform a scheduled task (key rotation).
-- Times are Unix milliseconds.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
