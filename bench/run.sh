#!/usr/bin/env bash
# Side-by-side benchmarks in one run: direct calls, nginx as a plain proxy, and
# modelgate (with authentication) in front of the same upstreams, with wrk
# (HTTP/1.1), h2load (HTTP/2, gRPC) and oha (fixed counts and fixed rates).
# Prints each scenario's table with req/s, p50, p99 and ratios, rewrites that
# scenario's section of bench/RESULTS.md, and prints issue 14's targets table.
#
#   bench/run.sh                 # all scenarios, 10 s each
#   BENCH_DURATION=20 bench/run.sh
#   BENCH_ROUNDS=5 bench/run.sh jwt-fast   # interleaved rounds of jwt-fast (default 3)
#   bench/run.sh spine           # only scenarios whose name matches
#   bench/run.sh instructions    # callgrind instructions/request (also bench/callgrind.sh)
#   bench/run.sh syscalls        # syscalls and context switches per request (bench/syscalls.py)
#   BENCH_PROFILE=release bench/run.sh   # measure the `release` build instead of `dist`
#
# modelgate is measured as it ships: scripts/build-static.sh dist, the binary
# deploy/Dockerfile builds (release + fat LTO, one codegen unit, static, and
# profile-guided with deploy/pgo/modelgate.profdata; MODELGATE_PGO=off
# measures it without the profile). Its first build takes about twice as long
# as `release`.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${MODELGATE_CACHE:-$HOME/.cache/modelgate}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
scripts/install-deps.sh >/dev/null

wants() { # does this run include a scenario whose name contains $1?
  [ $# -gt 0 ] || return 1
  local want=$1; shift
  [ ${#ARGS[@]} -eq 0 ] && return 0
  for a in "${ARGS[@]}"; do [[ "$want" == *"$a"* ]] && return 0; done
  return 1
}
ARGS=("$@")
PROFILE="${BENCH_PROFILE:-dist}"

# One package per command: `-p a -p b --example x` would build only the example.
if [ "$PROFILE" = dist ]; then
  # The shipped binary itself: static, and optimised with the PGO profile
  # (deploy/pgo/modelgate.profdata) unless MODELGATE_PGO=off.
  MODELGATE_BIN="$(scripts/build-static.sh dist | tail -n 1)"
  build="dist, static"
  # The same test as build-static.sh's: the profile is used only with the LLVM that made it.
  llvm="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
  if [ "${MODELGATE_PGO:-use}" = use ] && [ -f deploy/pgo/modelgate.profdata ] \
    && [ "$(cat deploy/pgo/llvm-major 2>/dev/null)" = "$llvm" ]; then
    build="$build, PGO"
  fi
  export MODELGATE_BENCH_BUILD="$build"
else
  cargo build --profile "$PROFILE" -p modelgate --locked
  MODELGATE_BIN="$CARGO_TARGET_DIR/$PROFILE/modelgate"
fi
export MODELGATE_BIN
if wants instructions || wants syscalls; then
  # The floor row: a bare hyper proxy (crates/modelgate-upstream/examples/bare_proxy.rs).
  cargo build --profile "$PROFILE" -p modelgate-upstream --example bare_proxy --locked
fi
if wants ext-authz; then
  cargo build --profile "$PROFILE" -p modelgate-extauthz --example check_request --locked
fi
# oha: fixed request counts (instructions) and fixed rates (latency).
OHA="${MODELGATE_OHA:-$HOME/.cargo/bin/oha}"
if { wants instructions || wants latency; } && [ ! -x "$OHA" ]; then
  CARGO_TARGET_DIR="$CACHE/oha-target" cargo install oha --locked --root "$HOME/.cargo"
fi
export MODELGATE_OHA="$OHA"
export MODELGATE_BARE_PROXY_BIN="$CARGO_TARGET_DIR/$PROFILE/examples/bare_proxy"
export MODELGATE_CHECK_REQUEST_BIN="$CARGO_TARGET_DIR/$PROFILE/examples/check_request"
exec "$CACHE/venv/bin/python" bench/bench.py "$@"
