#!/usr/bin/env bash
# Stops what scripts/up.sh started (by the pids it recorded), nothing else.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${DATA_DIR:-$(pwd)/data}"
for name in api worker redis; do
  pidfile="$DATA_DIR/run/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then kill "$pid" && echo "stopped $name (pid $pid)"; fi
  rm -f "$pidfile"
done
