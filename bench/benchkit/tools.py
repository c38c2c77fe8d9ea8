"""The bench's tools: oha, the release build, the resource server key, matplotlib."""

import json
import os
import shutil

from .process import run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "target", "bench-tools")
PLOT_VENV = os.path.join(ROOT, "target", "bench-venv")
OHA_VERSION = "1.16.0"
MATPLOTLIB_VERSION = "3.11.2"


def oha():
    """Return the oha binary, installing it into target/bench-tools when missing."""
    found = shutil.which("oha")
    if found:
        return found
    binary = os.path.join(TOOLS, "bin", "oha")
    if not os.path.exists(binary):
        print(f"installing oha {OHA_VERSION} into {TOOLS}", flush=True)
        run(["cargo", "install", "oha", "--version", OHA_VERSION, "--locked",
             "--root", TOOLS], timeout=3600)
    return binary


def release_build():
    """Build Tessera in release mode and return the binary's path."""
    run(["cargo", "build", "--release", "--quiet", "--manifest-path",
         os.path.join(ROOT, "Cargo.toml")], timeout=3600)
    return os.path.join(ROOT, "target", "release", "tessera")


def resource_server_jwk(path):
    """Write a fresh P-256 public JWK for the resource server to `path`.

    Only the public half is kept: neither server needs the private key.
    """
    script = ("const {generateKeyPairSync} = require('node:crypto');"
              "const {publicKey} = generateKeyPairSync('ec', {namedCurve: 'P-256'});"
              "console.log(JSON.stringify(publicKey.export({format: 'jwk'})));")
    jwk = json.loads(run(["node", "-e", script]))
    with open(path, "w") as out:
        json.dump(jwk, out)
    return path


def plot_python():
    """Return a Python with matplotlib, from a venv in target/ made on first use."""
    python = os.path.join(PLOT_VENV, "bin", "python")
    if not os.path.exists(python):
        run(["python3", "-m", "venv", PLOT_VENV])
    probe = [python, "-c", "import matplotlib"]
    try:
        run(probe)
    except Exception:
        print(f"installing matplotlib {MATPLOTLIB_VERSION} into {PLOT_VENV}", flush=True)
        run([python, "-m", "pip", "install", "--quiet", f"matplotlib=={MATPLOTLIB_VERSION}"],
            timeout=1800)
    return python
