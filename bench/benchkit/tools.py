"""The bench's tools: oha, the release build, the resource server key, matplotlib."""

import json
import os
import shutil

from .process import BenchError, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Cargo's target folder, `CARGO_TARGET_DIR` when set (relative to the
# checkout, as cargo reads it here).
TARGET = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR", "target"))
TOOLS = os.path.join(TARGET, "bench-tools")
PLOT_VENV = os.path.join(TARGET, "bench-venv")
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
    return os.path.join(TARGET, "release", "tessera")


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


def crypto_floor(seconds=2):
    """Measure what the cryptography of one token costs with `openssl speed`.

    One ES256 + ECDH-ES token needs a P-256 signature, an ephemeral P-256
    key (a fixed-base scalar multiplication, costed here as one more
    signature) and one ECDH derivation. Returns microseconds for each and
    for the token; AES key wrap and AES-GCM of a few hundred bytes are left
    out as negligible.
    """
    output = run(["openssl", "speed", "-seconds", str(seconds), "ecdsap256", "ecdhp256"],
                 timeout=120)
    sign_per_s = ecdh_per_s = None
    for line in output.splitlines():
        fields = line.split()
        if "ecdsa" in line and "(nistp256)" in line:
            sign_per_s = float(fields[-2])
        elif "ecdh" in line and "(nistp256)" in line:
            ecdh_per_s = float(fields[-1])
    if not sign_per_s or not ecdh_per_s:
        raise BenchError(f"cannot read openssl speed output:\n{output}")
    sign_us, ecdh_us = 1e6 / sign_per_s, 1e6 / ecdh_per_s
    return {"ecdsa_p256_sign_us": round(sign_us, 1), "ecdh_p256_us": round(ecdh_us, 1),
            "token_us": round(2 * sign_us + ecdh_us, 1)}


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
