"""A Tessera deployment for the bench: its environment, CLI and server."""

import base64
import json
import os

from .process import Server, free_port, run

RESOURCE = "https://bench.test/"
SCOPE = "bench.read"
REDIRECT_URI = "http://127.0.0.1:9/cb"
USERNAME = "bench"
PASSWORD = "bench-password-1"


class Tessera:
    """Configuration shared by the CLI and `tessera serve` on one store."""

    def __init__(self, binary, folder, database_url, log_filter="warn"):
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.server = None
        os.makedirs(folder, exist_ok=True)
        master_key = base64.b64encode(os.urandom(32)).decode()
        self.env = {
            **os.environ,
            "TESSERA_ISSUER": self.issuer,
            "TESSERA_LISTEN": f"127.0.0.1:{self.port}",
            "TESSERA_DATA_DIR": folder,
            "TESSERA_DATABASE_URL": database_url,
            "TESSERA_MASTER_KEY": master_key,
            "RUST_LOG": log_filter,
            # One client sends every request, far above the per-client
            # limits that protect a real deployment: the bench measures
            # throughput. Zero turns a limit off.
            "TESSERA_RATE_LIMITS__TOKEN__PER_SECOND": "0",
            "TESSERA_RATE_LIMITS__INTROSPECT__PER_SECOND": "0",
            # Codes are minted up front and exchanged later in one run.
            "TESSERA_TOKENS__AUTHORIZATION_CODE_TTL": "10m",
        }
        self.env.pop("TESSERA_METRICS_LISTEN", None)

    def url(self, path):
        return self.issuer + path

    def cli(self, *args, input_text=None):
        """Run `tessera --json ARGS` and return its parsed output."""
        output = run([self.binary, "--json", *args], env=self.env, input_text=input_text)
        return json.loads(output) if output.strip() else None

    def register(self, resource_jwk):
        """Register the resource server, the clients and the user the scenarios use."""
        run([self.binary, "migrate"], env=self.env)
        self.resource = self.cli("resources", "create", "--identifier", RESOURCE,
                                 "--name", "Bench", "--jwk-file", resource_jwk,
                                 "--scope", SCOPE)
        self.service = self.cli("clients", "create", "--name", "bench-service",
                                "--grant-type", "client_credentials", "--scope", SCOPE,
                                "--default-resource", RESOURCE)
        self.service_post = self.cli("clients", "create", "--name", "bench-service-post",
                                     "--grant-type", "client_credentials", "--scope", SCOPE,
                                     "--default-resource", RESOURCE,
                                     "--auth-method", "client_secret_post")
        # A first-party client skips the consent page, so one login yields
        # any number of codes. ES256 ID tokens, as the access tokens use.
        self.web = self.cli("clients", "create", "--name", "bench-web", "--first-party",
                            "--redirect-uri", REDIRECT_URI, "--scope", "openid",
                            "--scope", SCOPE, "--default-resource", RESOURCE,
                            "--id-token-alg", "ES256")
        self.cli("users", "create", "--username", USERNAME, "--password-stdin",
                 input_text=PASSWORD + "\n")

    def start(self, log_name="server.log", timeout=120.0):
        """Start `tessera serve`; return the seconds until /readyz returned 200."""
        self.server = Server("tessera", [self.binary, "serve"], self.env,
                             os.path.join(self.folder, log_name))
        return self.server.wait_for_status(self.url("/readyz"), timeout=timeout)

    def stop(self):
        if self.server is not None:
            self.server.stop()
            self.server = None
