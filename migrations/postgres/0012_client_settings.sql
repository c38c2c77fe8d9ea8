-- Per-client settings. `allowed_origins` lists the browser origins (CORS)
-- that may call the token, userinfo, revocation and introspection endpoints
-- as the client, as a JSON array like the other list columns. The lifetimes
-- are seconds; NULL means the configured or resource server's lifetime.
ALTER TABLE clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN access_token_ttl_seconds BIGINT;
ALTER TABLE clients ADD COLUMN refresh_token_idle_ttl_seconds BIGINT;
ALTER TABLE clients ADD COLUMN refresh_token_absolute_ttl_seconds BIGINT;
