#!/opt/jetty/bin/busybox sh
# The agent's entrypoint in every sandbox, run by the agent layer's own static shell (the
# environment may have another shell, or a minimal one): reads the runtime's settings, starts the
# gateway forwarder, then becomes the agent CLI.
#
# The forwarder says "ready" on a pipe once it listens, so we wait exactly as long as it needs
# (no polling, no probe connection to the gateway), bounded at 2 s. If it fails we still run
# the command: a CLI that cannot reach its model reports that itself, more clearly than we could.
#
# The command's first word is looked up in /opt/jetty/agent-bin first (the runtime's CLI), so the
# environment's PATH is left as the environment has it: the agent's tools find what the
# environment has, not the agent layer's Node or libraries.
#
# Env: JETTY_STDIN_FILE (file fed to the command's stdin; /dev/null when unset),
#      JETTY_GATEWAY_PORT / JETTY_GATEWAY_SOCKET (read by the forwarder),
#      JETTY_FORWARDER=0 to skip the forwarder.
set -u
jetty=/opt/jetty

# The runtime's fixed settings (telemetry off, its home directories): `export NAME=value` lines.
[ ! -f "$jetty/agent.env" ] || . "$jetty/agent.env"
export HOME="${HOME:-/home/agent}"

if [ "${JETTY_FORWARDER:-1}" != "0" ]; then
  fifo="${TMPDIR:-/tmp}/jetty-forwarder.$$"
  if "$jetty/bin/busybox" mkfifo -m 0600 "$fifo"; then
    "$jetty/bin/node" "$jetty/forwarder.js" >"$fifo" &
    exec 3<"$fifo"
    "$jetty/bin/busybox" rm -f "$fifo"
    if ! read -r -t 2 -u 3 _; then
      echo "jetty-entrypoint: the gateway forwarder did not start; the model gateway is unreachable" >&2
    fi
    # The command must not inherit the pipe.
    exec 3<&-
  else
    echo "jetty-entrypoint: cannot make a pipe in ${TMPDIR:-/tmp}; the model gateway is unreachable" >&2
  fi
fi

if [ "$#" -eq 0 ]; then
  echo "jetty-entrypoint: no command given" >&2
  exit 64
fi

cmd=$1
shift
[ ! -x "$jetty/agent-bin/$cmd" ] || cmd="$jetty/agent-bin/$cmd"
exec "$cmd" "$@" <"${JETTY_STDIN_FILE:-/dev/null}"
