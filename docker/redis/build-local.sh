#!/usr/bin/env bash
# Makes a Redis image for docker-compose.yml where no container registry can be reached: the
# locally made base (docker/base/make-local-base.sh) plus Debian's redis-server. Elsewhere the
# compose file's default, redis:7-bookworm, is pulled as usual. Idempotent: nothing is rebuilt
# when the image exists with the same inputs.
# Usage: bash docker/redis/build-local.sh [TAG]    (default jetty-local/redis:7-bookworm)
#   then: JETTY_REDIS_IMAGE=jetty-local/redis:7-bookworm docker compose up -d
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-jetty-local/redis:7-bookworm}"
base="${JETTY_LOCAL_BASE_IMAGE:-jetty-local/node:22-bookworm}"
docker image inspect "$base" >/dev/null 2>&1 || bash docker/base/make-local-base.sh

base_id=$(docker image inspect --format '{{.Id}}' "$base")
inputs=$(printf '%s\n' "$base_id" "$(sha256sum "$0" | cut -d' ' -f1)" | sha256sum | cut -c1-16)
current=$(docker image inspect --format '{{ index .Config.Labels "jetty.inputs" }}' "$tag" 2>/dev/null || true)
if [ "$current" = "$inputs" ]; then
  echo "$tag is up to date"
  exit 0
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# The data directory belongs to Debian's redis user; the server runs as it, never as root.
cat >"$stage/Dockerfile" <<DOCKERFILE
FROM $base
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no", "--dir", "/data"]
DOCKERFILE
echo "building $tag from $base and Debian's redis-server"
# Debian's mirror is reached from the build's RUN step through the host's network.
docker build -q --network host --label "jetty.inputs=$inputs" -t "$tag" "$stage" >/dev/null
echo "built $tag"
