#!/usr/bin/env bash
# Fuzz every parser an attacker reaches for a bounded time.
#   fuzz/run.sh [SECONDS] [TARGET...]  (default 60 s in all, split between the targets)
# With a nightly toolchain and cargo-fuzz: libFuzzer, coverage-guided.
# Otherwise: the stable random-mutation runner over the same functions.
# A failing input is kept in fuzz/artifacts/<target>/; make it a unit test in
# the crate that owns the parser. The stable runner builds in the dev profile
# (it shares the test build's dependencies; tens of thousands of inputs per
# target and second range); MODELGATE_FUZZ_RELEASE=1 builds it optimised.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(normalize policy_parse jwt_parse jwks_parse credentials remote_answers openai_model v2_rest v2_reader grpc_body grpc_peek signin h1_answer)
fi
per=$(( secs / ${#targets[@]} > 1 ? secs / ${#targets[@]} : 1 ))
# The workspace's lock file as a start, so the fuzzed crates build with the versions the gateway ships.
[ -f Cargo.lock ] || cp ../Cargo.lock Cargo.lock
# The same target dir (and dev profile) as scripts/test.sh, which also calls
# this script: dependencies built for the workspace tests are reused, not
# built a second time (tract most of all).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${MODELGATE_CACHE:-$HOME/.cache/modelgate}/target}"
if cargo +nightly --version >/dev/null 2>&1 && cargo +nightly fuzz --version >/dev/null 2>&1; then
    for t in "${targets[@]}"; do
        mkdir -p "corpus/$t"
        cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$per" -max_len=16384
    done
else
    echo "cargo-fuzz or nightly not available: running the stable runner (cargo install cargo-fuzz for libFuzzer)" >&2
    profile=()
    [ "${MODELGATE_FUZZ_RELEASE:-0}" = 1 ] && profile=(--release)
    cargo run --quiet "${profile[@]}" --no-default-features --bin stable -- "$secs" "${targets[@]}"
fi
