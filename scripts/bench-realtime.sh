#!/usr/bin/env bash
# Realtime fan-out benchmarks, one named scenario per call, end to end and bounded: start the
# server(s) (by PID), run the load generator under `timeout`, stop exactly what was started.
# Everything listens on and targets 127.0.0.1 only.
#
# Usage: scripts/bench-realtime.sh SCENARIO [N=1000] [RATE=10] [DURATION=60]
#   one          one Kavling instance, SQLite, in-process bus
#   one-pg       one Kavling instance on PostgreSQL and Redis: the baseline `two` is judged
#                against, so splitting the clients is measured apart from the database and bus
#   two          two Kavling instances, PostgreSQL (kavling_bench_rt) + the shared Redis on 6379,
#                clients split between them, changes made through instance A
#   redis-outage like `two`, but on a private Redis (port 6380) that is stopped for 10 s mid-run
#   storm        one Kavling instance on PostgreSQL: steady phase, then drop all sockets and
#                resubscribe them at once with `since`, counting PostgreSQL transactions
#   floor        the bare actix-ws broadcast floor (../shared/peers/actix-floor)
#   socketio     the Socket.IO 4.8 peer, one server (../shared/peers/socketio)
#
# Needs: `cargo build --release -p kavling-server` and then, as a separate command,
# `cargo build --release -p kavling-loadgen` (into $CARGO_TARGET_DIR or target/): built in one
# command, the generator's awc turns on actix-http's `http2` feature in the server too, which is
# not in the shipped server and adds ~1.1 KiB to every connection. The floor is built with
# `cargo build --release` (actix-web's default features, http2 included) (FLOOR_TARGET, default
# /root/.cache/kavling/target-floor), `npm ci` in the Socket.IO peer (SIO_DIR, default ../shared/peers/socketio; copy it where npm may write if that is read-only), psql/createdb for PostgreSQL.
# Knobs (env): SERVER_CPUS (taskset list for servers, default 1), CLIENT_CPUS (default 0), PG_OPTS
#   (the servers' PostgreSQL URL options, default ?sslmode=disable),
#   OUT (JSON lines, default docs/bench/realtime.jsonl), LABEL, PG (admin URL), OUTAGE_AT (s into
#   the driving when Redis stops, default 20), OUTAGE_S (default 10), UNITS (units of the project
#   created for the run, default 200: its snapshot is what every subscribe receives), SERVER_ENV
#   (extra `NAME=value ...` for the Kavling servers, e.g. MALLOC_ARENA_MAX=2 for an allocator run),
#   CHAT_PAIRS (buyer/marketing conversations beside the unit events, default 0: none; the run then
#   reports the chat message p99 from POST to the other party's frame and its ratio to the unit-event
#   p99), CHAT_RATE (chat messages per second over all pairs, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCENARIO=${1:?usage: $0 one|one-pg|two|redis-outage|storm|floor|socketio [N] [RATE] [DURATION]}
N=${2:-1000}
RATE=${3:-10}
DURATION=${4:-60}
SERVER_CPUS=${SERVER_CPUS:-1}
CLIENT_CPUS=${CLIENT_CPUS:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
FLOOR_DIR=$ROOT/../shared/peers/actix-floor
FLOOR_BIN=${FLOOR_TARGET:-/root/.cache/kavling/target-floor}/release
SIO_DIR=${SIO_DIR:-$ROOT/../shared/peers/socketio}
OUT=${OUT:-$ROOT/docs/bench/realtime.jsonl}
LABEL=${LABEL:-$SCENARIO-$N}
PG=${PG:-postgres://postgres@127.0.0.1:5432/postgres}
# The servers' connection options: same host, so no TLS on loopback (libpq's default `prefer` would
# encrypt it and spend the saturated server core on it), as in bench-bookings.sh.
PG_OPTS=${PG_OPTS-?sslmode=disable}
PGDB=kavling_bench_rt
OUTAGE_AT=${OUTAGE_AT:-20}
OUTAGE_S=${OUTAGE_S:-10}
UNITS=${UNITS:-200}
SERVER_ENV=${SERVER_ENV:-}
CHAT_PAIRS=${CHAT_PAIRS:-0}
CHAT_RATE=${CHAT_RATE:-10}
RUN_LIMIT=$((DURATION + 420))   # connect + subscribe + drive + drain + storm, generously bounded

mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d /tmp/kavling-bench-rt.XXXXXX)
ulimit -n "$(ulimit -Hn)"
echo "scenario $SCENARIO N=$N rate=$RATE duration=${DURATION}s; load $(cut -d' ' -f1-3 /proc/loadavg); logs in $WORK"

PIDS=()
PRIVATE_REDIS=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ -n "$PRIVATE_REDIS" ] && [ -f "$PRIVATE_REDIS" ]; then
    kill "$(cat "$PRIVATE_REDIS")" 2>/dev/null || true
  fi
}
trap cleanup EXIT

wait_http() { # URL
  for _ in $(seq 300); do curl -sf -m 1 "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server at $1 did not come up" >&2; return 1
}

ADMIN_EMAIL=bench@example.com
ADMIN_PASSWORD=bench-password-1

# Starts one Kavling instance: kavling_start PORT DATABASE_URL [REDIS_URL]
kavling_start() {
  local port=$1 db=$2 redis=${3:-}
  # shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=value words
  # The auth limits are raised because chat pairs register their users through the API.
  env KAVLING_AUTH_RATE_BURST=100000 KAVLING_AUTH_RATE_PER_SECOND=100000 $SERVER_ENV KAVLING_BIND=127.0.0.1:$port DATABASE_URL="$db" REDIS_URL="$redis" KAVLING_SEED_DEMO=false \
    KAVLING_DATA_DIR="$WORK/data" KAVLING_STORAGE_DIR="$WORK/data/uploads" RUST_LOG=warn \
    taskset -c "$SERVER_CPUS" "$BIN/kavling" serve > "$WORK/kavling-$port.log" 2>&1 &
  PIDS+=($!)
  LAST_PID=$!
  wait_http "http://127.0.0.1:$port/healthz"
}

kavling_admin() { # DATABASE_URL
  env DATABASE_URL="$1" KAVLING_DATA_DIR="$WORK/data" KAVLING_STORAGE_DIR="$WORK/data/uploads" RUST_LOG=warn \
    "$BIN/kavling" admin create --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD" > /dev/null
}

fresh_pg() {
  psql "$PG" -qc "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" > /dev/null
  psql "$PG" -qc "CREATE DATABASE $PGDB" > /dev/null
  echo "${PG%/*}/$PGDB$PG_OPTS"
}

# The server's own view: its commit-to-send histogram (commit stamp to the end of the hub's
# fan-out loop, before the sessions write), so delay before the fan-out shows apart from it.
commit_to_send() { # PORT
  echo "commit-to-send histogram of :$1 (le seconds → count):"
  curl -sf -m 5 "http://127.0.0.1:$1/metrics" | grep '^kavling_realtime_commit_to_send_seconds_bucket' \
    | sed -E 's/.*le="([^"]+)"} ([0-9]+)/  \1 \2/' | tr '\n' ' '; echo
}

# The same for feed items (chat messages and notifications), when chat pairs ran.
feed_commit_to_send() { # PORT
  [ "$CHAT_PAIRS" -gt 0 ] || return 0
  echo "feed commit-to-send histogram of :$1 (le seconds → count):"
  curl -sf -m 5 "http://127.0.0.1:$1/metrics" | grep '^kavling_realtime_feed_commit_to_send_seconds_bucket' \
    | sed -E 's/.*le="([^"]+)"} ([0-9]+)/  \1 \2/' | tr '\n' ' '; echo
}

loadgen() { # extra args...
  timeout "$RUN_LIMIT" taskset -c "$CLIENT_CPUS" "$BIN/kavling-loadgen" -n "$N" --rate "$RATE" \
    --duration "$DURATION" --create-project --units "$UNITS" --admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD" \
    --json "$OUT" --label "$LABEL" --chat-pairs "$CHAT_PAIRS" --chat-rate "$CHAT_RATE" "$@"
}

mkdir -p "$WORK/data"
case "$SCENARIO" in
one)
  DB="sqlite://$WORK/data/bench.db?mode=rwc"
  kavling_admin "$DB"
  kavling_start 18100 "$DB"
  loadgen --server http://127.0.0.1:18100 --server-pid "$LAST_PID"
  commit_to_send 18100; feed_commit_to_send 18100
  ;;
one-pg)
  DB=$(fresh_pg)
  kavling_admin "$DB"
  kavling_start 18105 "$DB" redis://127.0.0.1:6379
  loadgen --server http://127.0.0.1:18105 --server-pid "$LAST_PID"
  commit_to_send 18105
  ;;
two)
  DB=$(fresh_pg)
  kavling_admin "$DB"
  kavling_start 18101 "$DB" redis://127.0.0.1:6379; A=$LAST_PID
  kavling_start 18102 "$DB" redis://127.0.0.1:6379; B=$LAST_PID
  loadgen --server http://127.0.0.1:18101 --server http://127.0.0.1:18102 --server-pid "$A" --server-pid "$B"
  commit_to_send 18101; commit_to_send 18102; feed_commit_to_send 18101; feed_commit_to_send 18102
  ;;
redis-outage)
  DB=$(fresh_pg)
  PRIVATE_REDIS=$WORK/redis-6380.pid
  start_redis() {
    redis-server --bind 127.0.0.1 --port 6380 --save '' --appendonly no --daemonize yes \
      --pidfile "$PRIVATE_REDIS" --logfile "$WORK/redis-6380.log"
    for _ in $(seq 50); do [ "$(redis-cli -p 6380 ping 2>/dev/null)" = PONG ] && return 0; sleep 0.1; done
    echo "private redis did not start" >&2; return 1
  }
  if redis-cli -p 6380 ping > /dev/null 2>&1; then echo "port 6380 is in use" >&2; exit 1; fi
  start_redis
  kavling_admin "$DB"
  kavling_start 18103 "$DB" redis://127.0.0.1:6380; A=$LAST_PID
  kavling_start 18104 "$DB" redis://127.0.0.1:6380; B=$LAST_PID
  loadgen --server http://127.0.0.1:18103 --server http://127.0.0.1:18104 --server-pid "$A" --server-pid "$B" \
    > "$WORK/loadgen.out" 2>&1 &
  LG=$!
  for _ in $(seq 3000); do grep -q '^subscribed' "$WORK/loadgen.out" && break; sleep 0.1; done
  sleep "$OUTAGE_AT"
  echo "$(date -u +%T) stopping the private Redis (6380) for ${OUTAGE_S}s"
  kill "$(cat "$PRIVATE_REDIS")"
  sleep "$OUTAGE_S"
  start_redis
  echo "$(date -u +%T) private Redis back"
  set +e; wait "$LG"; RC=$?; set -e
  cat "$WORK/loadgen.out"
  exit "$RC"
  ;;
storm)
  DB=$(fresh_pg)
  kavling_admin "$DB"
  kavling_start 18105 "$DB"
  loadgen --server http://127.0.0.1:18105 --server-pid "$LAST_PID" --reconnect-storm --pg-stat-db "$PGDB" --pg-admin-url "$PG"
  ;;
floor)
  env PORT=18090 taskset -c "$SERVER_CPUS" "$FLOOR_BIN/server" > "$WORK/floor.log" 2>&1 &
  PIDS+=($!); FP=$!
  sleep 1
  timeout "$RUN_LIMIT" taskset -c "$CLIENT_CPUS" "$FLOOR_BIN/client" "$FP" "$N" "$DURATION" "$RATE" 18090 1 \
    | tee "$WORK/floor-client.out" | grep -E "rss_before|^conns|RESULT"
  { printf '{"label":"%s","at":"%s","loadavg":"%s","floor":' "$LABEL" "$(date -u +%FT%TZ)" "$(cat /proc/loadavg)"
    grep -E "^conns|RESULT" "$WORK/floor-client.out" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()), end="")'
    echo '}'; } >> "$OUT"
  ;;
socketio)
  cd "$SIO_DIR"
  env KIND=socketio PORT=18091 SERVER_ID=s1 MAX_LIFETIME_S=900 \
    taskset -c "$SERVER_CPUS" node server.js > "$WORK/sio.log" 2>&1 &
  PIDS+=($!)
  wait_http http://127.0.0.1:18091/stats
  timeout "$RUN_LIMIT" taskset -c "$CLIENT_CPUS" node loadgen.js --kind=socketio \
    --servers=http://127.0.0.1:18091 --publish=http://127.0.0.1:18091 --n="$N" --rate="$RATE" \
    --duration="$DURATION" --json="$WORK/sio.json"
  cd "$ROOT"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["label"]=sys.argv[2]; print(json.dumps(r))' \
    "$WORK/sio.json" "$LABEL" >> "$OUT"
  ;;
*)
  echo "unknown scenario $SCENARIO" >&2; exit 2
  ;;
esac
