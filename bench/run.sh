#!/usr/bin/env bash
# Side-by-side benchmarks in one run: direct calls, nginx as a plain proxy, and
# modelgate (with authentication) in front of the same upstreams, with wrk
# (HTTP/1.1) and h2load (HTTP/2, gRPC). Prints a table with req/s, p50, p99 and
# ratios, and writes it to bench/RESULTS.md.
#
#   bench/run.sh                 # all scenarios, 10 s each
#   BENCH_DURATION=20 bench/run.sh
#   bench/run.sh spine           # only scenarios whose group matches
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${MODELGATE_CACHE:-$HOME/.cache/modelgate}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
scripts/install-deps.sh >/dev/null
cargo build --release -p modelgate --locked
cargo build --release -p modelgate-extauthz --example check_request --locked
export MODELGATE_BIN="$CARGO_TARGET_DIR/release/modelgate"
export MODELGATE_CHECK_REQUEST_BIN="$CARGO_TARGET_DIR/release/examples/check_request"
exec "$CACHE/venv/bin/python" bench/bench.py "$@"
