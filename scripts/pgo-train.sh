#!/usr/bin/env bash
# Regenerates deploy/pgo/modelgate.profdata, the profile that the shipped
# `dist` build (scripts/build-static.sh dist, deploy/Dockerfile) is optimised
# with (profile-guided optimisation: hot code laid out together, cold code
# moved out of the way, branches and inlining chosen from real counts).
#
#   scripts/pgo-train.sh
#
# Steps:
#   1. build an instrumented static `dist` binary, with exactly the flags
#      build-static.sh uses (the profile only matches an identical build);
#   2. run the benchmark scenarios with it, briefly, as the training load:
#      API key and JWT (RS256, ES256) proxying to nginx, the built-in model
#      over V2 REST and gRPC, ext_authz checks, forward-auth, and the LLM
#      proxy with SSE streaming (bench/bench.py, figures written to a
#      scratch folder, not to bench/RESULTS.md);
#   3. merge the raw counts with the llvm-profdata of rustc's own LLVM major
#      version (Debian `llvm-N`, installed here if missing).
#
# Re-run it after large changes on the request path: functions whose code
# changed since the profile was taken are compiled without profile data
# (correct, just not optimised by it); everything else keeps its profile.
# Takes about one `dist` build plus a few minutes of load.
#
# Env: MODELGATE_CACHE (default ~/.cache/modelgate), PGO_DEFAULT_DIR (where the
# instrumented binary writes when LLVM_PROFILE_FILE is unset, default
# $MODELGATE_CACHE/pgo-raw; part of its flags), PGO_TARGET_DIR (default
# $MODELGATE_CACHE/pgo-target), BENCH_DURATION (default 3 s per row),
# PGO_SCENARIOS (default "jwt-fast builtin ext-authz fwdauth-fast llm").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CACHE="${MODELGATE_CACHE:-$HOME/.cache/modelgate}"
OUT="$ROOT/deploy/pgo/modelgate.profdata"
die() { echo "pgo-train: $*" >&2; exit 1; }

llvm_major="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
[ -n "$llvm_major" ] || die "rustc -vV names no LLVM version"
PROFDATA="llvm-profdata-$llvm_major"
if ! command -v "$PROFDATA" >/dev/null; then
  echo "pgo-train: installing llvm-$llvm_major for $PROFDATA (rustc uses LLVM $llvm_major)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "llvm-$llvm_major" >&2 \
    || die "cannot install llvm-$llvm_major; $PROFDATA must match rustc's LLVM ($llvm_major)"
fi

scripts/install-deps.sh >/dev/null
RAW="$(mktemp -d /tmp/modelgate-pgo-raw.XXXXXX)"
SCRATCH="$(mktemp -d /tmp/modelgate-pgo-bench.XXXXXX)"
trap 'rm -rf "$RAW" "$SCRATCH"' EXIT

# 1. Instrumented build: the same target, profile and flags as the shipped one.
BIN="$(CARGO_TARGET_DIR="${PGO_TARGET_DIR:-$CACHE/pgo-target}" MODELGATE_PGO=generate="${PGO_DEFAULT_DIR:-$CACHE/pgo-raw}" \
  scripts/build-static.sh dist | tail -n 1)"

# 2. Training load. The clients and floors are ordinary builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
cargo build --release -p modelgate-extauthz --example check_request --locked
OHA="${MODELGATE_OHA:-$HOME/.cargo/bin/oha}"
[ -x "$OHA" ] || CARGO_TARGET_DIR="$CACHE/oha-target" cargo install oha --locked --root "$HOME/.cargo"
# shellcheck disable=SC2086
LLVM_PROFILE_FILE="$RAW/modelgate-%p-%m.profraw" \
  BENCH_RESULTS_DIR="$SCRATCH" BENCH_DURATION="${BENCH_DURATION:-3}" BENCH_ROUNDS=1 \
  MODELGATE_BIN="$BIN" MODELGATE_OHA="$OHA" \
  MODELGATE_CHECK_REQUEST_BIN="$CARGO_TARGET_DIR/release/examples/check_request" \
  "$CACHE/venv/bin/python" bench/bench.py ${PGO_SCENARIOS:-jwt-fast builtin ext-authz fwdauth-fast llm}

# 3. Merge. Every modelgate process of the run wrote its counts at exit.
ls "$RAW"/*.profraw >/dev/null 2>&1 || die "the training run wrote no profile (no clean modelgate exit?)"
mkdir -p "$(dirname "$OUT")"
# --sparse: only functions that ran (2.9 MB instead of 27 MB).
"$PROFDATA" merge --sparse -o "$OUT" "$RAW"/*.profraw
echo "$llvm_major" > "$(dirname "$OUT")/llvm-major"
"$PROFDATA" show "$OUT" | tail -n 4 >&2
echo "pgo-train: wrote $OUT ($(du -h "$OUT" | cut -f1)) from $(ls "$RAW"/*.profraw | wc -l) runs" >&2
