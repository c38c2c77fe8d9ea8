"""Bulk rows for the scale scenarios, written with sqlite3 or psql.

Registering 100,000 clients through `tessera clients create` would take
far longer than the measurement, so filler rows copy a registered row and
change only its keys. Filler clients share the template client's secret
digest: the digest is an HMAC of the secret alone, so every filler client
authenticates with the template client's secret.
"""

import time

from .process import run

CLIENT_COLUMNS = (
    "client_id, name, application_type, redirect_uris, post_logout_redirect_uris, "
    "grant_types, response_types, scopes, token_endpoint_auth_method, secret_digest, "
    "jwks, jwks_uri, default_resource, id_token_signed_response_alg, first_party, "
    "require_pkce, self_registered, registration_token_digest, created_at, updated_at"
)
TOKEN_COLUMNS = (
    "jti, digest, client_id, subject, grant_id, grant_type, audience, scope, "
    "issued_at, expires_at, revoked_at"
)
BATCH = 250_000


def filler_client_id(number):
    return f"fill-{number:07d}"


class Seeder:
    """Batched inserts shared by both backends; subclasses write the SQL."""

    filled_clients = 0
    filled_tokens = 0

    def grow_clients(self, template_id, target):
        """Add filler clients until there are `target`; return the seconds taken."""
        started = time.monotonic()
        while self.filled_clients < target:
            last = min(target, self.filled_clients + BATCH)
            self.add_clients(template_id, self.filled_clients + 1, last)
            self.filled_clients = last
        return time.monotonic() - started

    def grow_tokens(self, target):
        """Add unexpired filler token records until there are `target`; return the seconds taken."""
        started = time.monotonic()
        while self.filled_tokens < target:
            last = min(target, self.filled_tokens + BATCH)
            self.add_tokens(self.filled_tokens + 1, last, expired=False)
            self.filled_tokens = last
        return time.monotonic() - started

    def add_expired_tokens(self, count):
        """Add `count` token records that expired a minute ago; return the seconds taken."""
        started = time.monotonic()
        for first in range(1, count + 1, BATCH):
            self.add_tokens(first, min(count, first + BATCH - 1), expired=True)
        return time.monotonic() - started


class SqliteSeeder(Seeder):
    def __init__(self, path):
        self.path = path

    def sql(self, statement):
        return run(["sqlite3", "-cmd", ".timeout 30000", self.path, statement], timeout=3600)

    def sequence(self, first, last):
        return (f"WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL "
                f"SELECT i + 1 FROM n WHERE i < {last}) ")

    def add_clients(self, template_id, first, last):
        self.sql(self.sequence(first, last) +
                 f"INSERT INTO clients ({CLIENT_COLUMNS}) SELECT "
                 "printf('fill-%07d', i), 'bench filler ' || i, application_type, "
                 "redirect_uris, post_logout_redirect_uris, grant_types, response_types, "
                 "scopes, token_endpoint_auth_method, secret_digest, jwks, jwks_uri, "
                 "default_resource, id_token_signed_response_alg, first_party, "
                 "require_pkce, self_registered, NULL, created_at, updated_at "
                 f"FROM n, (SELECT * FROM clients WHERE client_id = '{template_id}')")

    def add_tokens(self, first, last, expired):
        expires = "issued_at - 60000" if expired else "issued_at + 86400000"
        self.sql(self.sequence(first, last) +
                 f"INSERT INTO access_tokens ({TOKEN_COLUMNS}) SELECT "
                 "lower(hex(randomblob(16))), lower(hex(randomblob(32))), client_id, "
                 f"subject, NULL, grant_type, audience, scope, issued_at, {expires}, NULL "
                 "FROM n, (SELECT * FROM access_tokens LIMIT 1)")

    def count(self, table):
        return int(self.sql(f"SELECT count(*) FROM {table}").strip())

    def expired_left(self):
        now_ms = int(time.time() * 1000)
        return self.sql(f"SELECT 1 FROM access_tokens WHERE expires_at < {now_ms} LIMIT 1").strip() != ""


class PostgresSeeder(Seeder):
    def __init__(self, cluster, database):
        self.cluster = cluster
        self.database = database

    def sql(self, statement):
        return self.cluster.psql(self.database, statement)

    def add_clients(self, template_id, first, last):
        self.sql(f"INSERT INTO clients ({CLIENT_COLUMNS}) SELECT "
                 "'fill-' || lpad(i::text, 7, '0'), 'bench filler ' || i, application_type, "
                 "redirect_uris, post_logout_redirect_uris, grant_types, response_types, "
                 "scopes, token_endpoint_auth_method, secret_digest, jwks, jwks_uri, "
                 "default_resource, id_token_signed_response_alg, first_party, "
                 "require_pkce, self_registered, NULL, created_at, updated_at "
                 f"FROM generate_series({first}, {last}) AS i, clients t "
                 f"WHERE t.client_id = '{template_id}'")
        self.sql("ANALYZE clients")

    def add_tokens(self, first, last, expired):
        expires = "now() - interval '1 minute'" if expired else "now() + interval '1 day'"
        self.sql(f"INSERT INTO access_tokens ({TOKEN_COLUMNS}) SELECT "
                 "md5(random()::text || i), md5(i::text || random()::text) || md5(random()::text), "
                 f"client_id, subject, NULL, grant_type, audience, scope, issued_at, {expires}, NULL "
                 f"FROM generate_series({first}, {last}) AS i, "
                 "(SELECT * FROM access_tokens LIMIT 1) t")
        self.sql("ANALYZE access_tokens")

    def grow_tokens(self, target):
        """Add filler token records, then vacuum and checkpoint them.

        Millions of rows inserted in two minutes start autovacuum and the
        checkpointer, which would run during the next measured run. A
        deployment that records as many tokens over their lifetime does
        that work gradually.
        """
        started = time.monotonic()
        super().grow_tokens(target)
        self.sql("VACUUM (ANALYZE) access_tokens")
        self.sql("CHECKPOINT")
        return time.monotonic() - started

    def count(self, table):
        return int(self.sql(f"SELECT count(*) FROM {table}").strip())

    def expired_left(self):
        return self.sql("SELECT 1 FROM access_tokens WHERE expires_at < now() LIMIT 1").strip() != ""
