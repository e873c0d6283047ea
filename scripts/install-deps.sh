#!/usr/bin/env bash
# Install everything modelgate's end-to-end tests and benchmarks need on this
# machine kind (Debian 12, root, Python 3.11, registries only). Idempotent:
# re-running skips what is already in place.
#
#   scripts/install-deps.sh            # apt packages + both Python venvs
#   MODELGATE_CACHE=/somewhere scripts/install-deps.sh
#
# Results:
#   $MODELGATE_CACHE/venv          tests/requirements.txt (+ -lock.txt): pytest,
#                                  MLServer 1.7.1, KServe 0.16.0, sklearn, onnx,
#                                  tritonclient, openai, ...
#   $MODELGATE_CACHE/venv-litellm  tests/requirements-litellm.txt (+ -lock.txt):
#                                  LiteLLM proxy (mock OpenAI-compatible server)
#   $MODELGATE_CACHE/oidc         tests/oidc/package-lock.json: oidc-provider (npm ci)
#   Debian: nginx-light (has auth_request) caddy (2.6, forward_auth) redis-server
#           chromium chromium-driver (admin UI tests) linux-perf valgrind (bench)
#           wrk nghttp2-client curl jq
#           (their system services are stopped and disabled: tests start
#           their own instances on free ports)
#
# Env knobs: MODELGATE_CACHE (default ~/.cache/modelgate), MODELGATE_PYTHON
# (interpreter for the venvs, default python3; must be 3.10-3.12),
# MODELGATE_SKIP_APT=1, MODELGATE_SKIP_LITELLM=1, MODELGATE_SKIP_NPM=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MODELGATE_CACHE:-$HOME/.cache/modelgate}"
PYTHON="${MODELGATE_PYTHON:-python3}"
START=$(date +%s)
SUMMARY=()

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { echo "install-deps: $*" >&2; }
die() { echo "install-deps: ERROR: $*" >&2; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || echo "install-deps: FAILED (exit $rc); see the messages above" >&2' EXIT

# --------------------------------------------------------------------------
# 1. Debian packages
# --------------------------------------------------------------------------
APT_PACKAGES=(nginx-light caddy redis-server wrk nghttp2-client curl jq chromium chromium-driver linux-perf valgrind)

apt_missing() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

stop_system_services() {
  # The packages' init scripts may have started nginx / redis on :80 / :6379
  # (not here: the image's policy-rc.d forbids it, and we add one while
  # installing if it is missing). Tests start their own instances; make sure
  # the system ones are neither running nor enabled. Only the packages' own
  # daemons are touched (their pid files), never the tests' instances.
  local svc pidfile pid
  for svc in nginx caddy redis-server; do
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null && [ -x "/etc/init.d/$svc" ]; then
      update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
  for pidfile in /run/nginx.pid /run/redis/redis-server.pid; do
    [ -s "$pidfile" ] || continue
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      log "stopping the system daemon with pid $pid ($pidfile)"
      case "$pidfile" in
        *nginx*) [ -x /etc/init.d/nginx ] && /etc/init.d/nginx stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true ;;
        *) [ -x /etc/init.d/redis-server ] && /etc/init.d/redis-server stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true ;;
      esac
    fi
  done
}

install_apt() {
  if [ "${MODELGATE_SKIP_APT:-0}" = 1 ]; then
    SUMMARY+=("apt: skipped")
    return
  fi
  local missing
  missing="$(apt_missing | tr '\n' ' ')"
  missing="${missing% }"
  if [ -z "$missing" ]; then
    SUMMARY+=("apt: all present")
  else
    local SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || die "need root (or sudo) to apt-get install: $missing"
      SUDO="sudo"
    fi
    log "apt-get install $missing"
    # Keep the packages' postinst from starting services where we can.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
      $SUDO chmod +x /usr/sbin/policy-rc.d
      made_policy=1
    fi
    local rc=0
    $SUDO apt-get update -qq || rc=$?
    if [ $rc -eq 0 ]; then
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing || rc=$?
    fi
    [ $made_policy -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || die "apt-get failed (exit $rc) installing: $missing"
    local still
    still="$(apt_missing | tr '\n' ' ')"
    [ -z "${still// /}" ] || die "apt packages still missing after install: $still"
    SUMMARY+=("apt: installed $missing")
  fi
  stop_system_services
  local b
  for b in nginx caddy redis-server wrk h2load curl jq; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "'$b' not found after apt install"
  done
  # Forward-auth tests need nginx's auth_request module (nginx-light has it).
  { nginx -V 2>&1 || /usr/sbin/nginx -V 2>&1; } | grep -q http_auth_request_module \
    || die "nginx lacks the auth_request module (install nginx-light or nginx-core)"
}

# --------------------------------------------------------------------------
# 2. Python venvs (skip when the stamp matches the requirement files' hash)
# --------------------------------------------------------------------------
check_python() {
  command -v "$PYTHON" >/dev/null || die "python '$PYTHON' not found (set MODELGATE_PYTHON)"
  local v
  v="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  case "$v" in
    3.10|3.11|3.12) ;;
    *) die "python $v at $(command -v "$PYTHON"): need 3.10-3.12 (mlserver 1.7.1); set MODELGATE_PYTHON" ;;
  esac
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
    || die "python $v lacks venv/ensurepip (apt-get install python3-venv?)"
}

# make_venv NAME REQUIREMENTS LOCK SMOKE_PYTHON_CODE...
# (each smoke snippet runs in its own interpreter)
make_venv() {
  local name="$1" req="$2" lock="$3"
  shift 3
  local venv="$CACHE/$name" stamp="$CACHE/$name/.modelgate-stamp"
  [ -f "$req" ] || die "missing $req"
  local want
  want="$( { "$PYTHON" -c 'import sys; print(sys.version)'; cat "$req"; [ -f "$lock" ] && cat "$lock"; } | sha256sum | cut -d' ' -f1)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    SUMMARY+=("$name: cached")
    return
  fi
  local t0; t0=$(date +%s)
  log "building $venv from ${req#"$ROOT"/}"
  rm -rf "$venv"
  mkdir -p "$CACHE"
  "$PYTHON" -m venv "$venv" || die "could not create venv $venv"
  local args=(-r "$req")
  [ -f "$lock" ] && args+=(-c "$lock")
  if ! "$venv/bin/pip" install -q "${args[@]}"; then
    die "pip install ${args[*]} into $venv failed (the stamp is not written; fix and re-run)"
  fi
  "$venv/bin/pip" check >&2 || log "warning: 'pip check' reports conflicts in $venv (see above)"
  local smoke
  for smoke in "$@"; do
    "$venv/bin/python" -c "$smoke" || die "smoke import failed in $venv: $smoke"
  done
  echo "$want" > "$stamp"
  SUMMARY+=("$name: built in $(( $(date +%s) - t0 ))s")
}

# mlserver, kserve and tritonclient.grpc each register the protobuf package
# `inference` (OIP V2): any two in one interpreter fail with "duplicate symbol
# 'inference.ServerLiveRequest'". Hence separate snippets (and the tests only
# run the servers as subprocesses).
MAIN_SMOKE1='import mlserver, mlserver_sklearn; assert mlserver.__version__ == "1.7.1", mlserver.__version__'
MAIN_SMOKE2='import kserve, sklearn, joblib'
MAIN_SMOKE3='
import sklearn, skl2onnx, onnx, onnxruntime, joblib, numpy
import tritonclient.grpc, tritonclient.http, openai, requests, pytest, jwt, cryptography
'
# Importing the proxy app proves the [proxy] extra is complete.
LITELLM_SMOKE='
import os
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm, litellm.proxy.proxy_server
'

# --------------------------------------------------------------------------
# 3. npm: the real OpenID provider (panva/oidc-provider, pinned with its lock
#    file in tests/oidc/) for the identity end-to-end tests. Installed with
#    `npm ci` into the cache, never into the repository; skipped when the
#    stamp matches package.json + package-lock.json. Needs node >= 20.19.
# --------------------------------------------------------------------------
install_npm() {
  if [ "${MODELGATE_SKIP_NPM:-0}" = 1 ]; then
    SUMMARY+=("npm: skipped")
    return
  fi
  local src="$ROOT/tests/oidc" dest="$CACHE/oidc" want
  [ -f "$src/package.json" ] && [ -f "$src/package-lock.json" ] || die "missing $src/package.json or package-lock.json"
  command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed for the OpenID provider (apt-get install nodejs npm)"
  want="$( { node --version; cat "$src/package.json" "$src/package-lock.json"; } | sha256sum | cut -d' ' -f1)"
  if [ -d "$dest/node_modules/oidc-provider" ] && [ "$(cat "$dest/.modelgate-stamp" 2>/dev/null)" = "$want" ]; then
    SUMMARY+=("npm: cached")
    return
  fi
  local t0; t0=$(date +%s)
  mkdir -p "$dest"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  log "npm ci (oidc-provider) into $dest"
  npm ci --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error >&2 \
    || die "npm ci in $dest failed (the stamp is not written; fix and re-run)"
  node -e "import('$dest/node_modules/oidc-provider/lib/index.js').then(() => process.exit(0), (e) => { console.error(e); process.exit(1); })" \
    || die "oidc-provider does not load under $(node --version)"
  echo "$want" > "$dest/.modelgate-stamp"
  SUMMARY+=("npm: oidc-provider installed in $(( $(date +%s) - t0 ))s")
}

install_apt
check_python
make_venv venv "$ROOT/tests/requirements.txt" "$ROOT/tests/requirements-lock.txt" \
  "$MAIN_SMOKE1" "$MAIN_SMOKE2" "$MAIN_SMOKE3"
if [ "${MODELGATE_SKIP_LITELLM:-0}" = 1 ]; then
  SUMMARY+=("venv-litellm: skipped")
else
  make_venv venv-litellm "$ROOT/tests/requirements-litellm.txt" "$ROOT/tests/requirements-litellm-lock.txt" "$LITELLM_SMOKE"
fi
install_npm

summary="$(printf '%s; ' "${SUMMARY[@]}")"
echo "install-deps: OK in $(( $(date +%s) - START ))s: ${summary%; } (cache $CACHE)"
