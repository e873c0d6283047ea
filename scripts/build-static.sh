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
#
# Profile-guided optimisation: the `dist` build is optimised with
# deploy/pgo/modelgate.profdata (made by scripts/pgo-train.sh) when it exists.
# MODELGATE_PGO=off builds without it; MODELGATE_PGO=generate=DIR builds the
# instrumented binary that scripts/pgo-train.sh trains with (it writes its
# counts to DIR at exit, or to $LLVM_PROFILE_FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${1:-release}"
TARGET=x86_64-unknown-linux-gnu
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
PGO_DATA=deploy/pgo/modelgate.profdata
case "${MODELGATE_PGO:-use}" in
  use)
    llvm="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
    made_by="$(cat deploy/pgo/llvm-major 2>/dev/null || true)"
    if [ "$PROFILE" = dist ] && [ -f "$PGO_DATA" ] && [ "$llvm" != "$made_by" ]; then
      # An index file of another LLVM major may not be readable: skip, say so.
      echo "build-static: not using $PGO_DATA: made by LLVM $made_by, this rustc uses LLVM $llvm (scripts/pgo-train.sh remakes it)" >&2
    elif [ "$PROFILE" = dist ] && [ -f "$PGO_DATA" ]; then
      # Copied to a name holding its digest: cargo fingerprints the flags, not
      # the file, so a new profile must change the flags to rebuild.
      pgo_dir="${CARGO_TARGET_DIR:-target}/pgo"
      mkdir -p "$pgo_dir"
      used="$(cd "$pgo_dir" && pwd)/$(sha256sum "$PGO_DATA" | cut -c1-16).profdata"
      [ -f "$used" ] || cp "$PGO_DATA" "$used"
      # Functions changed since the profile was taken are built without it.
      RUSTFLAGS="$RUSTFLAGS -Cprofile-use=$used"
    fi ;;
  off) ;;
  generate=?*) RUSTFLAGS="$RUSTFLAGS -Cprofile-generate=${MODELGATE_PGO#generate=}" ;;
  *) echo "build-static: MODELGATE_PGO must be use, off or generate=DIR (got '$MODELGATE_PGO')" >&2; exit 2 ;;
esac
export RUSTFLAGS
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
