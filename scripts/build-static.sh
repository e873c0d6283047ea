#!/usr/bin/env bash
# Builds modelgate as a fully static x86_64 Linux binary: glibc linked in
# (-C target-feature=+crt-static), so it runs on a `scratch` or
# distroless/static base with no libc. This is the build step of
# deploy/Dockerfile; tests/e2e/test_deploy.py runs it too.
#
#   scripts/build-static.sh [PROFILE]     # PROFILE: release (default), dist (the image) or dev
#
# The target is named explicitly (--target) so the static flag applies to the
# binary only, not to build scripts and proc macros. Only the
# x86_64-unknown-linux-gnu target is needed (no musl toolchain): glibc >= 2.34
# has its DNS and files resolvers built in, so name lookup works statically.
# Prints the binary's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${1:-release}"
TARGET=x86_64-unknown-linux-gnu
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
cargo build --locked -p modelgate --profile "$PROFILE" --target "$TARGET" >&2
dir="$PROFILE"
[ "$PROFILE" = dev ] && dir=debug
BIN="${CARGO_TARGET_DIR:-target}/$TARGET/$dir/modelgate"

die() { echo "build-static: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no binary at $BIN"
# A static binary has no interpreter and no shared-library dependencies.
if ldd "$BIN" 2>/dev/null | grep -q '=>'; then
  die "$BIN links shared libraries: $(ldd "$BIN" | tr '\n' ' ')"
fi
file "$BIN" | grep -Eq 'statically linked|static-pie linked' || die "not static: $(file "$BIN")"
"$BIN" --version >&2 || die "$BIN --version failed"
echo "$BIN"
