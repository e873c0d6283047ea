#!/usr/bin/env bash
# Fuzz the normaliser and the policy parser for a bounded time.
#   fuzz/run.sh [SECONDS]   (default 60, split between the targets)
# With a nightly toolchain and cargo-fuzz: libFuzzer, coverage-guided.
# Otherwise: the stable random-mutation runner over the same functions.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
per=$(( secs / 2 > 1 ? secs / 2 : 1 ))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/modelgate/target-fuzz}"
if cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz --version >/dev/null 2>&1; then
    for t in normalize policy_parse; do
        mkdir -p "corpus/$t"
        cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$per" -max_len=4096
    done
else
    echo "cargo-fuzz or nightly not available: running the stable runner (cargo install cargo-fuzz for libFuzzer)" >&2
    cargo run --quiet --release --no-default-features --bin stable -- "$secs"
fi
