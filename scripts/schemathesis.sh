#!/usr/bin/env bash
# Property-based API testing with schemathesis against the running server's own OpenAPI document:
# starts the debug `kavling` on a free port with a fresh SQLite database and the demo seed, logs in
# as the seeded admin, runs `st run --checks all` with a fixed seed, and stops the server.
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/kavling/target}"
MAX_EXAMPLES="${1:-200}"
BIN="$CARGO_TARGET_DIR/debug/kavling"
[ -x "$BIN" ] || cargo build -p kavling-server --bin kavling
command -v st >/dev/null 2>&1 || pip install -q schemathesis

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
(cd "$WORK" && DATABASE_URL="sqlite://$WORK/k.db?mode=rwc" KAVLING_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
  KAVLING_AUTH_RATE_BURST=100000 KAVLING_AUTH_RATE_PER_SECOND=100000 \
  exec "$BIN" > "$WORK/server.log" 2>&1) &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -fs "127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
PASSWORD=$(grep -E '^\s+ADMIN' "$WORK/server.log" | sed -E 's/.*password: //')
TOKEN=$(curl -fs -X POST "127.0.0.1:$PORT/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@kavling.local\",\"password\":\"$PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
timeout 900 st run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
  --checks all --max-examples "$MAX_EXAMPLES" --seed 1 --workers 1 \
  -H "Authorization: Bearer $TOKEN"
