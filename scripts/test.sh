#!/usr/bin/env bash
# The test command: on a fresh machine it installs what the tests need
# (scripts/install-deps.sh: apt packages, pinned Python venvs, npm packages),
# then runs formatting and lint checks, the Rust tests, and the end-to-end
# tests against real MLServer, KServe, LiteLLM, nginx, Redis and oidc-provider
# started on 127.0.0.1.
#
#   scripts/test.sh              # everything
#   scripts/test.sh -k openai    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CACHE="${MODELGATE_CACHE:-$HOME/.cache/modelgate}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export CARGO_TERM_COLOR=never

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "install dependencies"
scripts/install-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "build the modelgate binary for end-to-end tests"
cargo build -p modelgate --locked
export MODELGATE_BIN="$CARGO_TARGET_DIR/debug/modelgate"

if [ -x fuzz/run.sh ]; then
  step "fuzz (bounded)"
  fuzz/run.sh "${MODELGATE_FUZZ_SECONDS:-30}"
fi

step "end-to-end tests (real peers)"
"$CACHE/venv/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"

step "all tests passed"
