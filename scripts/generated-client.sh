#!/usr/bin/env bash
# Proves the OpenAPI document is usable, not only valid: generates a Python client from the running
# server's /api/v1/openapi.json with openapi-python-client (pinned, from PyPI, in a cached venv),
# then drives a real flow with it (e2e/client/flow.py: register, log in, list projects, book a
# unit, read the booking). Starts the debug `kavling` on a free port with a fresh SQLite database
# and the demo seed, and stops it. Called by .ci/run; runnable alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/kavling/target}"
BIN="$CARGO_TARGET_DIR/debug/kavling"
[ -x "$BIN" ] || cargo build -p kavling-server --bin kavling
GENERATOR_VERSION=0.29.1
VENV="${KAVLING_CLIENT_VENV:-/root/.cache/kavling/openapi-python-client-$GENERATOR_VERSION}"
if [ ! -x "$VENV/bin/openapi-python-client" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "openapi-python-client==$GENERATOR_VERSION"
fi

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -u REDIS_URL DATABASE_URL="sqlite://$WORK/k.db?mode=rwc" KAVLING_BIND="127.0.0.1:$PORT" \
  KAVLING_DATA_DIR="$WORK" KAVLING_STORAGE_DIR="$WORK/uploads" KAVLING_SEED_DEMO=true RUST_LOG=warn \
  "$BIN" serve > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1 120); do curl -fs "127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "127.0.0.1:$PORT/api/v1/openapi.json" -o "$WORK/openapi.json"
ADMIN_LINE=$(grep -E '^ +ADMIN +[^ ]+ +password: ' "$WORK/server.out" | head -n1)
export KAVLING_ADMIN_EMAIL=$(awk '{print $2}' <<<"$ADMIN_LINE")
export KAVLING_ADMIN_PASSWORD=$(sed -E 's/.*password: //' <<<"$ADMIN_LINE")
export KAVLING_URL="http://127.0.0.1:$PORT"

# The raw-SVG upload and download have no JSON form; the generator skips them with a warning.
"$VENV/bin/openapi-python-client" generate --path "$WORK/openapi.json" \
  --output-path "$WORK/gen/kavling_client" --meta none > "$WORK/generate.log" 2>&1 \
  || { cat "$WORK/generate.log"; exit 1; }
PYTHONPATH="$WORK/gen" "$VENV/bin/python" e2e/client/flow.py
