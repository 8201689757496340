#!/usr/bin/env bash
# Builds the MinIO server the object-store tests run (a real S3 implementation on loopback), from
# its Go module, and prints the binary's path. Idempotent: the binary is cached by version under
# ${JETTY_CACHE_DIR:-~/.cache/jetty}/minio/<version>/minio, so a second run only prints the path.
#   scripts/minio.sh            build if missing, print the path
#   MINIO_VERSION=v0.0.0-... scripts/minio.sh   another pinned version
# Needs the Go toolchain (go on PATH or /usr/local/go/bin/go) and the Go module proxy; about
# 2 minutes on 2 cores the first time.
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
# Pinned: MinIO publishes no tagged module versions; this is the pseudo-version of 2026-02-12.
MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
cache=${JETTY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/jetty}/minio/$MINIO_VERSION
bin=$cache/minio

die() { echo "minio.sh: $*" >&2; exit 1; }

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

go=$(command -v go || true)
[ -n "$go" ] || { [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go; }
[ -n "$go" ] || die "the Go toolchain is needed to build MinIO (install Go 1.24 or newer, or put go on PATH)"

mkdir -p "$cache"
# One build at a time: a second caller waits for the first and then finds the binary.
exec 9>"$cache/.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

echo "minio.sh: building MinIO $MINIO_VERSION (about 2 minutes)" >&2
dir=$("$go" mod download -json "$MINIO_MODULE@$MINIO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] && [ -d "$dir" ] || die "go mod download $MINIO_MODULE@$MINIO_VERSION gave no directory"
log=$(mktemp)
# The module cache is read-only: build from it into a temporary file, then move into place whole.
(cd "$dir" && CGO_ENABLED=0 "$go" build -trimpath -o "$bin.tmp" .) >"$log" 2>&1 || {
  tail -30 "$log" >&2; rm -f "$log" "$bin.tmp"; die "go build failed"; }
rm -f "$log"
mv "$bin.tmp" "$bin"
echo "$bin"
