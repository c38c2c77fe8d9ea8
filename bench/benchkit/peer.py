"""node-oidc-provider, the peer, from bench/peer."""

import json
import os
import secrets

from .process import Server, free_port, run

PEER_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peer")


def install():
    """Install the pinned oidc-provider into bench/peer/node_modules when missing."""
    marker = os.path.join(PEER_FOLDER, "node_modules", "oidc-provider", "package.json")
    if not os.path.exists(marker):
        run(["npm", "ci", "--prefix", PEER_FOLDER, "--no-audit", "--no-fund"], timeout=600)
    with open(marker) as package:
        return json.load(package)["version"]


class Peer:
    """One started peer process, with or without access-token encryption."""

    def __init__(self, folder, resource_jwk, encrypt):
        self.port = free_port()
        self.client_id = "bench-peer"
        self.client_secret = secrets.token_urlsafe(32)
        env = {
            **os.environ,
            "PEER_PORT": str(self.port),
            "PEER_CLIENT_ID": self.client_id,
            "PEER_CLIENT_SECRET": self.client_secret,
            "PEER_RESOURCE_JWK": resource_jwk,
            "PEER_ENCRYPT": "1" if encrypt else "0",
            "NODE_ENV": "production",
        }
        log = os.path.join(folder, f"peer-{'encrypted' if encrypt else 'plain'}.log")
        self.server = Server("oidc-provider", ["node", "server.mjs"], env, log, cwd=PEER_FOLDER)
        self.server.wait_for_line("listening")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.server.stop()
