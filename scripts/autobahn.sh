#!/usr/bin/env bash
# WebSocket protocol compliance: runs the Autobahn cases (the `kosoku` runner from PyPI) against
# `/ws-echo`, which echoes through the same session loop as `/ws` (enabled by KAVLING_WS_ECHO=1).
# Usage: scripts/autobahn.sh [CASE-GLOB...]   (default: sections 1-7, 9, 10; 12 and 13 test
# permessage-deflate, which actix-ws does not offer: kosoku reports them UNIMPLEMENTED and exits 1)
# Env: PORT (9301), OUT (target/autobahn), TIMEOUT seconds for the whole run (900),
#      PROFILE (dev or release; dev by default: compliance does not depend on optimisation).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-9301}
OUT=${OUT:-target/autobahn}
TIMEOUT=${TIMEOUT:-900}
PROFILE=${PROFILE:-dev}
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=('1.*' '2.*' '3.*' '4.*' '5.*' '6.*' '7.*' '9.*' '10.*')

command -v kosoku >/dev/null 2>&1 || pip install -q kosoku

cargo build --profile "$PROFILE" -p kavling-server --bin kavling
dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
bin="${CARGO_TARGET_DIR:-target}/$dir/kavling"

tmp=$(mktemp -d)
KAVLING_WS_ECHO=1 KAVLING_BIND="127.0.0.1:$PORT" DATABASE_URL="sqlite://$tmp/kavling.db?mode=rwc" \
  KAVLING_DATA_DIR="$tmp" KAVLING_STORAGE_DIR="$tmp/uploads" KAVLING_SEED_DEMO=false \
  REDIS_URL= RUST_LOG=warn "$bin" serve >"$tmp/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null

args=()
for c in "${CASES[@]}"; do args+=(-i "$c"); done
rm -rf "$OUT"
status=0
timeout "$TIMEOUT" kosoku "${args[@]}" -o "$OUT" "127.0.0.1:$PORT/ws-echo" || status=$?

# One line per outcome, then every case that is not OK.
python3 - "$OUT" <<'PY'
import json, pathlib, sys, collections
out = pathlib.Path(sys.argv[1])
idx = next(iter(out.rglob("index.json")), None)
if idx is None:
    sys.exit("no index.json under " + str(out))
data = json.loads(idx.read_text())
counts = collections.Counter()
odd = []
for agent, cases in data.items():
    for case, r in sorted(cases.items(), key=lambda kv: [int(x) for x in kv[0].split(".")]):
        counts[r["behavior"]] += 1
        if r["behavior"] != "OK" or r.get("behaviorClose") not in (None, "OK", "INFORMATIONAL"):
            odd.append(f'{case}: {r["behavior"]} / close {r.get("behaviorClose")}')
print("autobahn:", dict(counts))
for line in odd:
    print("  " + line)
PY
exit "$status"
