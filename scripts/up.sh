#!/usr/bin/env bash
# Brings up the whole system on this machine and runs the demo runbook through a real agent CLI
# in a real container: Redis, the Docker engine, the runtime images, the API and a worker (two
# processes), then examples/hello.md streamed to the terminal. Idempotent: what is already up
# stays up. Stop it all with `bash scripts/down.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh

export PORT="${PORT:-8080}" HOST="${HOST:-127.0.0.1}" REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export DATA_DIR="${DATA_DIR:-$root/data}"
mkdir -p "$DATA_DIR/logs" "$DATA_DIR/run"

# Redis: the local one on 6379, started here (no persistence needed for a demo) unless one answers.
if ! redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  case "$REDIS_URL" in
    redis://127.0.0.1:*|redis://localhost:*)
      echo "starting redis-server"
      redis-server --port "${REDIS_URL##*:}" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --pidfile "$DATA_DIR/run/redis.pid" --logfile "$DATA_DIR/logs/redis.log"
      for _ in $(seq 50); do redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && break; sleep 0.1; done ;;
    *) echo "Redis at $REDIS_URL does not answer" >&2; exit 1 ;;
  esac
fi

# The demo collection and its key: made once, kept in DATA_DIR, registered by the API at each start.
key_file="$DATA_DIR/demo-api-key"
if [ ! -s "$key_file" ]; then
  (umask 077; node -e "import('./dist/src/tenancy/api-keys.js').then((m) => console.log(m.generateApiKey()))" >"$key_file")
fi
export JETTY_BOOTSTRAP_COLLECTION="${JETTY_BOOTSTRAP_COLLECTION:-demo}"
export JETTY_BOOTSTRAP_API_KEY="${JETTY_BOOTSTRAP_API_KEY:-$(cat "$key_file")}"

start() { # role
  local role=$1 pidfile="$DATA_DIR/run/$1.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$role already running (pid $(cat "$pidfile"))"
    return
  fi
  nohup node dist/src/main/server.js --role "$role" >>"$DATA_DIR/logs/$role.log" 2>&1 &
  echo $! >"$pidfile"
  echo "started $role (pid $!, log $DATA_DIR/logs/$role.log)"
}
start worker
start api

for _ in $(seq 100); do
  curl -fsS "http://$HOST:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$HOST:$PORT/readyz" >/dev/null || { echo "the API did not become ready; see $DATA_DIR/logs/api.log" >&2; exit 1; }
echo "API ready at http://$HOST:$PORT (OpenAPI UI at /docs)"
echo "Collection $JETTY_BOOTSTRAP_COLLECTION; its API key is in $key_file. For the CLI and the README's examples:"
echo "  export JETTY_URL=http://$HOST:$PORT JETTY_API_KEY=\$(cat $key_file)"
echo
echo "== demo: examples/hello.md through claude-code and the simulated provider"
JETTY_API_KEY="$JETTY_BOOTSTRAP_API_KEY" node scripts/demo-client.mjs "http://$HOST:$PORT" examples/hello.md
