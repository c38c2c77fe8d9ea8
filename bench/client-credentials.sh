#!/usr/bin/env bash
# Load test of the client credentials grant. It starts a release build of
# Tessera on loopback with a fresh SQLite store and registers one resource
# server (EC P-256 encryption key, ES256 signing) and one client. Then it
# runs oha against POST /token at concurrency 1, 16 and 64 and prints
# tokens per second and p50/p99 latency for each.
#
# Usage: bench/client-credentials.sh
# Environment: PORT (default 18480), DURATION per concurrency level
# (default 10s), which bounds the requests as well.
# Needs node (tests/interop/node_modules, from `npm ci`) to make the key,
# and installs oha into target/bench-tools when it is not on PATH.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
port=${PORT:-18480}
duration=${DURATION:-10s}
tools="$root/target/bench-tools"

oha=$(command -v oha || true)
if [[ -z "$oha" ]]; then
  oha="$tools/bin/oha"
  if [[ ! -x "$oha" ]]; then
    echo "installing oha into $tools" >&2
    cargo install oha --locked --root "$tools"
  fi
fi

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
tessera="$root/target/release/tessera"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export TESSERA_ISSUER="http://127.0.0.1:$port"
export TESSERA_LISTEN="127.0.0.1:$port"
export TESSERA_DATA_DIR="$work"
export TESSERA_DATABASE_URL="sqlite://$work/tessera.db"
TESSERA_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export TESSERA_MASTER_KEY
export RUST_LOG=${RUST_LOG:-warn}
# One client sends every request, far above the per-client token limit
# that protects a real deployment: the bench measures throughput.
export TESSERA_RATE_LIMITS__TOKEN__PER_SECOND=0

# The resource server's key pair; only the public half is registered.
(cd "$root/tests/interop" && node --input-type=module -e "
import { generateKeyPair, exportJWK } from 'jose';
const { publicKey } = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256' });
console.log(JSON.stringify(await exportJWK(publicKey)));
") > "$work/resource.jwk"

"$tessera" migrate >/dev/null 2>&1
"$tessera" --json resources create --identifier https://bench.test/ --name Bench \
  --jwk-file "$work/resource.jwk" --scope bench.read >/dev/null
client=$("$tessera" --json clients create --name bench-client \
  --grant-type client_credentials --scope bench.read \
  --default-resource https://bench.test/)
client_id=$(printf '%s' "$client" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
client_secret=$(printf '%s' "$client" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
basic=$(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)

"$tessera" serve 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null

# One request by hand, so a setup error shows before the load starts.
curl -fsS -o /dev/null -H "Authorization: Basic $basic" \
  -d grant_type=client_credentials "http://127.0.0.1:$port/token"

echo "POST /token client_credentials, SQLite, $(nproc) cores, $duration per level"
printf '%-12s %12s %10s %10s %10s\n' concurrency tokens/s p50_ms p99_ms non_200
for concurrency in 1 16 64; do
  "$oha" --no-tui --output-format json -z "$duration" \
    -c "$concurrency" -m POST \
    -H "Authorization: Basic $basic" \
    -T application/x-www-form-urlencoded \
    -d grant_type=client_credentials \
    "http://127.0.0.1:$port/token" > "$work/oha-$concurrency.json"
  python3 - "$work/oha-$concurrency.json" "$concurrency" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
codes = report.get("statusCodeDistribution", {})
ok = codes.get("200", 0)
failed = sum(count for code, count in codes.items() if code != "200")
seconds = report["summary"]["total"]
percentiles = report["latencyPercentiles"]
print(f'{sys.argv[2]:<12} {ok / seconds:12.0f} {percentiles["p50"] * 1000:10.2f} '
      f'{percentiles["p99"] * 1000:10.2f} {failed:10d}')
PY
done
