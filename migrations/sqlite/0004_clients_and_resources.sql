-- Times are Unix milliseconds; booleans are 0 or 1.
-- OAuth clients. List-valued metadata is stored as JSON arrays in TEXT, the
-- same on both backends. Secrets are HMAC-SHA-256 digests, never the secret.
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    application_type TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    response_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    secret_digest TEXT,
    jwks TEXT,
    jwks_uri TEXT,
    default_resource TEXT,
    id_token_signed_response_alg TEXT NOT NULL,
    first_party INTEGER NOT NULL,
    require_pkce INTEGER NOT NULL,
    self_registered INTEGER NOT NULL,
    registration_token_digest TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Resource servers (RFC 8707 resource indicators): the audience of access
-- tokens and the public key those tokens are encrypted to, either inline
-- or fetched from a JWKS URL. Each has introspection credentials.
CREATE TABLE resource_servers (
    identifier TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    access_token_ttl_seconds INTEGER,
    signing_alg TEXT NOT NULL,
    encryption_jwk TEXT,
    jwks_uri TEXT,
    introspection_client_id TEXT NOT NULL UNIQUE,
    introspection_secret_digest TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((encryption_jwk IS NULL) <> (jwks_uri IS NULL))
);

-- Initial access tokens for dynamic registration (RFC 7591 section 3),
-- stored as digests, each usable a limited number of times until expiry.
CREATE TABLE initial_access_tokens (
    digest TEXT PRIMARY KEY,
    remaining_uses INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
