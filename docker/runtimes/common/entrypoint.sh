#!/bin/bash
# Entrypoint of every runtime image: starts the gateway forwarder, then becomes the agent CLI.
#
# The forwarder says "ready" on a pipe once it listens, so we wait exactly as long as it needs
# (no polling, no probe connection to the gateway), bounded at 2 s. If it fails we still run
# the command: a CLI that cannot reach its model reports that itself, more clearly than we could.
#
# Env: JETTY_STDIN_FILE (file fed to the command's stdin; /dev/null when unset),
#      JETTY_GATEWAY_PORT / JETTY_GATEWAY_SOCKET (read by the forwarder),
#      JETTY_FORWARDER=0 to skip the forwarder (images used outside Jetty).
set -u

if [ "${JETTY_FORWARDER:-1}" != "0" ]; then
  exec 3< <(exec node /opt/jetty/forwarder.js)
  if ! read -r -t 2 -u 3 _; then
    echo "jetty-entrypoint: the gateway forwarder did not start; the model gateway is unreachable" >&2
  fi
  # The command must not inherit the pipe.
  exec 3<&-
fi

if [ "$#" -eq 0 ]; then
  echo "jetty-entrypoint: no command given" >&2
  exit 64
fi

exec "$@" <"${JETTY_STDIN_FILE:-/dev/null}"
