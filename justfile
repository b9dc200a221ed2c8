# Conveniences only: every recipe is a plain command you can run without `just`.

pg_url := "postgres://postgres@127.0.0.1:5432/kavling_dev"
redis_url := "redis://127.0.0.1:6379"

# Serve on 127.0.0.1:8080 with SQLite and the in-process bus (seeds the demo project).
run:
    cargo run --release

# The test suite on the embedded default.
test:
    cargo test --workspace

# The test suite on PostgreSQL and Redis.
test-pg:
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='kavling_dev'" | grep -q 1 || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE kavling_dev"
    DATABASE_URL={{pg_url}} REDIS_URL={{redis_url}} cargo test --workspace

# Format check and clippy, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# All benchmarks.
bench: bench-siteplan

# Siteplan engine benchmarks (criterion).
bench-siteplan:
    cargo bench -p kavling-siteplan

# WebSocket protocol compliance: the Autobahn cases (kosoku, from PyPI) against /ws-echo.
autobahn *cases:
    bash scripts/autobahn.sh {{cases}}

# Realtime fan-out benchmark, one scenario (one, two, redis-outage, storm, floor, socketio); see docs/BENCHMARKS.md.
# Two builds: built in one command, the generator's awc would add actix-http's http2 to the server.
bench-realtime scenario="one" n="1000" rate="10" duration="60":
    cargo build --release -p kavling-server
    cargo build --release -p kavling-loadgen
    scripts/bench-realtime.sh {{scenario}} {{n}} {{rate}} {{duration}}

# Booking throughput on PostgreSQL (64 clients by default); see docs/BENCHMARKS.md.
bench-bookings clients="64" units="5000" warmup="200":
    cargo build --release -p kavling-server
    cargo build --release -p kavling-loadgen
    scripts/bench-bookings.sh {{clients}} {{units}} {{warmup}}

# The production shape (needs a Docker engine; set KAVLING_JWT_SECRET and KAVLING_PII_KEY in .env).
up:
    docker compose up --build

# Browser tests of the live siteplan page and /admin (Debian chromium + playwright-core; screenshots in tests-artifacts/).
e2e:
    cargo build -p kavling-server --bin kavling
    bash .ci/e2e

# Property-based API testing: schemathesis (PyPI) against a fresh server's own OpenAPI document,
# once per seed (default: 100 examples per operation, seeds 1 2 3).
schemathesis examples="100" *seeds="1 2 3":
    bash scripts/schemathesis.sh {{examples}} {{seeds}}

# What CI runs.
ci:
    bash .ci/run
