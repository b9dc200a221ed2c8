#!/usr/bin/env bash
# Watch-notification benchmark (issue #16), end to end and bounded: one Kavling instance on
# PostgreSQL and Redis (or SQLite with `sqlite`), N buyers seeded watching one unit, all
# connected on their own `user:<id>` channel; the unit becomes AVAILABLE; the generator counts
# delivered, missed and duplicated notifications and the latency from the PATCH's answer to each
# frame; then the database is asked how many notifications were stored.
#
# Usage: scripts/bench-notify.sh [pg|sqlite] [N=10000]
# Needs: `cargo build --release -p kavling-server`, then (a separate command, see
# bench-realtime.sh) `cargo build --release -p kavling-loadgen`, psql for PostgreSQL.
# Knobs (env): SERVER_CPUS (default 1), CLIENT_CPUS (default 0), OUT (JSON lines, default
#   docs/bench/notify.jsonl), LABEL, PG (admin URL).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-pg}
N=${2:-10000}
SERVER_CPUS=${SERVER_CPUS:-1}
CLIENT_CPUS=${CLIENT_CPUS:-0}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=${OUT:-$ROOT/docs/bench/notify.jsonl}
LABEL=${LABEL:-notify-$MODE-$N}
PG=${PG:-postgres://postgres@127.0.0.1:5432/postgres}
PGDB=kavling_bench_notify
PORT=18110
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d /tmp/kavling-bench-notify.XXXXXX)
mkdir -p "$WORK/data"
ulimit -n "$(ulimit -Hn)"
echo "notify benchmark $MODE N=$N; load $(cut -d' ' -f1-3 /proc/loadavg); logs in $WORK"

PID=""
cleanup() {
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

case "$MODE" in
pg)
  psql "$PG" -qc "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" > /dev/null
  psql "$PG" -qc "CREATE DATABASE $PGDB" > /dev/null
  DB="${PG%/*}/$PGDB?sslmode=disable"
  REDIS=redis://127.0.0.1:6379
  ;;
sqlite)
  DB="sqlite://$WORK/data/bench.db?mode=rwc"
  REDIS=""
  ;;
*) echo "mode: pg or sqlite" >&2; exit 2 ;;
esac

ENV=(DATABASE_URL="$DB" REDIS_URL="$REDIS" KAVLING_SEED_DEMO=false KAVLING_DATA_DIR="$WORK/data"
  KAVLING_STORAGE_DIR="$WORK/data/uploads" RUST_LOG=warn)
kv() { env "${ENV[@]}" "$@"; }
ADMIN_EMAIL=bench@example.com
ADMIN_PASSWORD=bench-password-1
kv "$BIN/kavling" admin create --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD" > /dev/null
if curl -sf -m 1 "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1; then echo "port $PORT is in use" >&2; exit 1; fi
# Started directly (not through a shell function), so $! is the server's own pid.
env "${ENV[@]}" KAVLING_BIND=127.0.0.1:$PORT taskset -c "$SERVER_CPUS" "$BIN/kavling" serve > "$WORK/kavling.log" 2>&1 &
PID=$!
for _ in $(seq 300); do curl -sf -m 1 "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1 && break; sleep 0.1; done

bench() { timeout 600 taskset -c "$CLIENT_CPUS" "$BIN/notifybench" --url "http://127.0.0.1:$PORT" \
  --admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD" "$@"; }
UNIT=$(bench --prepare)
START=$(date +%s)
kv "$BIN/kavling" seed --watchers "$N" --unit "$UNIT" --tokens-out "$WORK/tokens.txt"
echo "seeded $N watchers in $(( $(date +%s) - START )) s"
bench --unit "$UNIT" --tokens "$WORK/tokens.txt" --json "$OUT" --label "$LABEL"
if [ "$MODE" = pg ]; then
  echo "stored: $(psql "${PG%/*}/$PGDB" -tAc "SELECT count(*), count(DISTINCT user_id), max(seq) FROM notifications WHERE kind = 'unit_available'")"
else
  echo "stored: $(sqlite3 "$WORK/data/bench.db" "SELECT count(*), count(DISTINCT user_id), max(seq) FROM notifications WHERE kind = 'unit_available'" 2>/dev/null || echo 'sqlite3 not installed')"
fi
# The server's view: feed items from the notification's creation (its commit transaction) to
# the end of the hub's fan-out, and how many came by the bus or by catch-up.
METRICS=$(curl -sf -m 5 "http://127.0.0.1:$PORT/metrics")
echo "feed commit-to-send histogram (le seconds → count):"
grep '^kavling_realtime_feed_commit_to_send_seconds_bucket' <<<"$METRICS" \
  | sed -E 's/.*le="([^"]+)"} ([0-9]+)/  \1 \2/' | tr '\n' ' '; echo
grep -E '^kavling_realtime_feed_(frames_sent|catch_up_events|duplicates_dropped)' <<<"$METRICS" || true
