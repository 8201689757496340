#!/bin/sh
# The layout every runtime image shares, run once at image build as root: the sandbox user `agent`
# (uid and gid 1000; the official node images' `node` user is renamed rather than fought over the
# id), HOME /home/agent, /app with assets/ and results/ owned by it, /run/jetty where the gateway
# socket is mounted, /opt/jetty for the forwarder and entrypoint; and the staged extra CA trusted.
set -eu
if getent passwd 1000 >/dev/null; then
  usermod --login agent --home /home/agent --move-home "$(getent passwd 1000 | cut -d: -f1)"
  groupmod --new-name agent "$(getent group 1000 | cut -d: -f1)"
else
  groupadd --gid 1000 agent
  useradd --uid 1000 --gid 1000 --create-home --home-dir /home/agent --shell /bin/bash agent
fi
mkdir -p /home/agent /app/assets /app/results /run/jetty /opt/jetty
chown agent:agent /home/agent /app /app/assets /app/results
if [ -s /usr/local/share/ca-certificates/extra.crt ] && command -v update-ca-certificates >/dev/null; then
  update-ca-certificates >/dev/null 2>&1 || true
fi
