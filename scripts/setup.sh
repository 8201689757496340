#!/usr/bin/env bash
# Bootstraps a machine for the demo and the tests: scripts/setup.sh [--test]
# Idempotent and non-interactive; a second run only checks and takes a few seconds.
#   - Debian packages docker.io, redis-server, debootstrap (only those missing; needs root)
#   - a running Docker engine (starts dockerd in the background unless DOCKER_HOST is set)
#   - node_modules (npm ci when missing or when package-lock.json changed), then the build
#   - the sandbox images (docker/build-images.sh)
#   --test (or JETTY_SETUP_TEST=1): also the Python `openai` client the test suite drives, the
#     Python `prometheus-client` parser the metrics tests read /metrics with, Docker Compose v2
#     (scripts/compose.sh), Debian's chromium for the web page's browser test (playwright-core),
#     and the MinIO server the object-store tests run (scripts/minio.sh: built from its Go module,
#     cached by version)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

PY_OPENAI_VERSION=3.57.0
# The Prometheus project's own text-format parser: the metrics tests read /metrics with it.
PY_PROMETHEUS_CLIENT_VERSION=0.26.0
DOCKERD_LOG=${JETTY_DOCKERD_LOG:-/var/log/jetty-dockerd.log}

with_test_deps=${JETTY_SETUP_TEST:-0}
for arg in "$@"; do
  case "$arg" in
    --test) with_test_deps=1 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

started=$(date +%s.%N)
say() { echo "setup: $*"; }
trap 'echo "setup: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
die() { echo "setup: $*" >&2; exit 1; }

# --- Debian packages ---------------------------------------------------------------------------
missing=()
command -v docker >/dev/null || missing+=(docker.io)
if [ -z "${DOCKER_HOST:-}" ]; then command -v dockerd >/dev/null || missing+=(docker.io); fi
command -v redis-server >/dev/null || missing+=(redis-server)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root or install them: apt-get install -y ${missing[*]}"
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp)
  { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >"$apt_log" 2>&1 || {
    tail -20 "$apt_log" >&2; die "apt-get failed"; }
  rm -f "$apt_log"
fi

# --- Docker engine -----------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  [ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer (docker info fails)"
  [ "$(id -u)" -eq 0 ] || die "no Docker engine is running and only root can start one here"
  say "starting dockerd (log: $DOCKERD_LOG)"
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  # setsid + nohup: the engine outlives this script and the terminal that ran it.
  setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { tail -20 "$DOCKERD_LOG" >&2; die "dockerd did not become ready in 30 s"; }
  say "dockerd is ready"
fi

# --- Node dependencies and build ---------------------------------------------------------------
# True when node_modules holds exactly what package-lock.json pins (npm's hidden lockfile lists what
# is installed; optional packages for other platforms are absent from it, which is fine).
node_modules_match_lock() {
  node -e '
    const lock = require("./package-lock.json").packages;
    const have = require("./node_modules/.package-lock.json").packages;
    const ok = Object.entries(lock).every(([k, p]) => k === "" || (have[k]
      ? have[k].version === p.version && (!p.integrity || have[k].integrity === p.integrity)
      : p.optional === true));
    process.exit(ok && Object.keys(have).every((k) => k in lock) ? 0 : 1);
  ' 2>/dev/null
}
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.jetty-lock.sha256
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$lock_hash" ]; then
  if [ -d node_modules ] && node_modules_match_lock; then
    : # installed by hand from the same lock: no need to reinstall
  else
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  fi
  echo "$lock_hash" >"$stamp"
fi

# Rebuild only when a compiled input changed since the last successful build.
build_inputs=()
for p in src bench tsconfig.json tsconfig.build.json package-lock.json; do [ -e "$p" ] && build_inputs+=("$p"); done
build_hash=$(find "${build_inputs[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
build_stamp=dist/.jetty-build.sha256
if [ "$(cat "$build_stamp" 2>/dev/null || true)" != "$build_hash" ]; then
  say "npm run build"
  build_log=$(mktemp)
  npm run build >"$build_log" 2>&1 || { cat "$build_log" >&2; rm -f "$build_log"; die "the build failed"; }
  rm -f "$build_log"
  echo "$build_hash" >"$build_stamp"
fi

# --- Test-only dependencies --------------------------------------------------------------------
if [ "$with_test_deps" = 1 ]; then
  # The web page's test drives a real browser; playwright's own browser downloads are not used.
  if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
    [ "$(id -u)" -eq 0 ] || die "--test needs chromium; run as root or: apt-get install -y chromium"
    command -v apt-get >/dev/null || die "--test needs chromium (set CHROMIUM_PATH to one) and there is no apt-get"
    say "installing chromium"
    apt_log=$(mktemp)
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; } >"$apt_log" 2>&1 || {
      tail -20 "$apt_log" >&2; die "apt-get install chromium failed"; }
    rm -f "$apt_log"
  fi
  command -v python3 >/dev/null || die "--test needs python3 (apt-get install -y python3 python3-pip)"
  have=$(python3 -c 'import openai; print(openai.__version__)' 2>/dev/null || true)
  if [ "$have" != "$PY_OPENAI_VERSION" ]; then
    say "pip install openai==$PY_OPENAI_VERSION"
    # A system Python on Debian 12 is "externally managed"; this machine is ours to manage.
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      "openai==$PY_OPENAI_VERSION" || die "pip install openai==$PY_OPENAI_VERSION failed"
  fi
  have=$(python3 -c 'from importlib.metadata import version; print(version("prometheus-client"))' 2>/dev/null || true)
  if [ "$have" != "$PY_PROMETHEUS_CLIENT_VERSION" ]; then
    say "pip install prometheus-client==$PY_PROMETHEUS_CLIENT_VERSION"
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      "prometheus-client==$PY_PROMETHEUS_CLIENT_VERSION" || die "pip install prometheus-client==$PY_PROMETHEUS_CLIENT_VERSION failed"
  fi
fi

# --- Docker Compose v2 (the compose test) ----------------------------------------------------------
# Built once from its Go module into a cache (the first build takes minutes: it fetches its modules).
if [ "$with_test_deps" = 1 ]; then
  bash scripts/compose.sh || die "Docker Compose could not be built (scripts/compose.sh)"
fi

# --- MinIO (the object-store tests) ----------------------------------------------------------------
# The object-store tests run a real S3 server on loopback, built once from its Go module into a cache
# (the first build takes about 2 minutes).
if [ "$with_test_deps" = 1 ]; then
  minio=$(bash scripts/minio.sh) || die "MinIO could not be built (scripts/minio.sh)"
  say "minio: $minio"
fi

# --- Sandbox images ----------------------------------------------------------------------------
bash docker/build-images.sh

say "ready ($(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s)"
