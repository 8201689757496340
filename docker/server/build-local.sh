#!/usr/bin/env bash
# Builds the server image (jetty/server:local, what docker-compose.yml runs) where no container
# registry can be reached: on the locally made base (docker/base/make-local-base.sh), from this
# checkout's `npm run build` output and its production dependencies installed from the npm
# registry on the host. Elsewhere, `docker build -f docker/server/Dockerfile .` does the same in
# the image. Idempotent: nothing is rebuilt when the image exists with the same inputs.
# Usage: npm run build && bash docker/server/build-local.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-jetty/server:local}"
base="${JETTY_LOCAL_BASE_IMAGE:-jetty-local/node:22-bookworm}"
[ -f dist/src/main/server.js ] || { echo "no dist/: run npm run build first" >&2; exit 1; }
docker image inspect "$base" >/dev/null 2>&1 || bash docker/base/make-local-base.sh

# What the image is made of: the base, the build output, the locked dependencies, this script.
base_id=$(docker image inspect --format '{{.Id}}' "$base")
inputs=$({
  echo "$base_id"
  sha256sum package-lock.json "$0" | cut -d' ' -f1
  find dist -type f ! -name '*.map' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-16)
current=$(docker image inspect --format '{{ index .Config.Labels "jetty.inputs" }}' "$tag" 2>/dev/null || true)
if [ "$current" = "$inputs" ]; then
  echo "$tag is up to date"
  exit 0
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp package.json package-lock.json "$stage"/
(cd "$stage" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
cp -r dist "$stage"/dist
# `jetty` on PATH inside the container: `docker compose exec api jetty admin collections create acme`.
printf '#!/bin/sh\nexec node /srv/dist/src/main/cli.js "$@"\n' >"$stage/jetty"
chmod 0755 "$stage/jetty"
cat >"$stage/Dockerfile" <<DOCKERFILE
FROM $base
WORKDIR /srv
COPY node_modules node_modules
COPY dist dist
COPY package.json ./
COPY jetty /usr/local/bin/jetty
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
EXPOSE 8080
CMD ["node", "dist/src/main/server.js", "--role", "all"]
DOCKERFILE
docker build -q --label "jetty.inputs=$inputs" -t "$tag" "$stage" >/dev/null
echo "built $tag"
