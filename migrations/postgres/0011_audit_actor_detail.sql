-- Who acted (`user:<id>`, `client:<id>`, `cli`, `server`) and a short,
-- secret-free description of what changed, such as a key id or the scopes
-- a user approved.
ALTER TABLE audit_events ADD COLUMN actor TEXT;
ALTER TABLE audit_events ADD COLUMN detail TEXT;
