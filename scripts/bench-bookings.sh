#!/usr/bin/env bash
# Booking throughput on PostgreSQL: a fresh database, a release server, and `bookbench` with
# C concurrent clients booking distinct units of one project (see docs/BENCHMARKS.md).
# Usage: scripts/bench-bookings.sh [clients] [units] [warmup]   (env: TARGET, PORT, DB, DATABASE_URL)
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-64}
UNITS=${2:-3000}
WARMUP=${3:-200}
TARGET=${TARGET:-${CARGO_TARGET_DIR:-target}/release}
PORT=${PORT:-18080}
DB=${DB:-kavling_bench}
DATA=$(mktemp -d)
trap 'kill "${SERVER:-}" 2>/dev/null || true; rm -rf "$DATA"' EXIT

psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
# Same host: no TLS on loopback (libpq's default `prefer` would encrypt it; see BENCHMARKS.md).
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable} KAVLING_DATA_DIR=$DATA KAVLING_SEED_DEMO=false
"$TARGET/kavling" admin create --email bench@kavling.test --password benchpass123 >/dev/null
KAVLING_BIND=127.0.0.1:$PORT RUST_LOG=warn "$TARGET/kavling" &
SERVER=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$TARGET/bookbench" --url "http://127.0.0.1:$PORT" --email bench@kavling.test --password benchpass123 \
  --units "$UNITS" --warmup "$WARMUP" --concurrency "$CLIENTS"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
