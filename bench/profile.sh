#!/usr/bin/env bash
# CPU profile of modelgate under wrk load (issue 14, item 1): the API-key path
# in front of an nginx `return 200` upstream. `perf record -g` (Debian
# linux-perf; `-e cpu-clock` when hardware counters are not available, as in
# VMs and containers; DWARF call graphs, the release profile has line tables) → `inferno` (installed here if missing) → a flame graph
# in bench/flamegraph-api-key.svg and the top functions (self time) in
# bench/profile-top.txt. When perf cannot record at all, it says so and points
# to bench/callgrind.sh, whose callgrind_annotate output ranks the same costs.
#
#   bench/profile.sh              # 10 s of load
#   BENCH_DURATION=20 bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${MODELGATE_CACHE:-$HOME/.cache/modelgate}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
cargo build --release -p modelgate --locked
if ! command -v inferno-flamegraph >/dev/null && [ ! -x "$HOME/.cargo/bin/inferno-flamegraph" ]; then
  CARGO_TARGET_DIR="$CACHE/inferno-target" cargo install inferno --locked --root "$HOME/.cargo"
fi
export PATH="$HOME/.cargo/bin:$PATH"
export MODELGATE_BIN="$CARGO_TARGET_DIR/release/modelgate"
exec "$CACHE/venv/bin/python" bench/profile.py "$@"
