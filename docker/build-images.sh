#!/usr/bin/env bash
# Builds the sandbox images of the agent runtimes: docker/build-images.sh [runtime ...]
# (default: every runtime under docker/runtimes/). Idempotent: an image whose `jetty.inputs` label matches the hash of its
# inputs is left alone, so a second run takes a second or so.
#
# Each runtime is a directory docker/runtimes/<name>/ holding:
#   Dockerfile        required; its first line names the image: `# jetty.image: <repo>:<tag>`;
#                     it takes the base as `ARG BASE`; an optional `# jetty.build-network: host`
#                     line lets its RUN steps reach package registries (default: none)
#   package.json      optional; with package-lock.json, installed on the host with `npm ci` into
#   package-lock.json the staged context's node_modules/, which the Dockerfile COPYs
# The staged context (gitignored, docker/.build/<name>/) also gets common/ (the forwarder and the
# entrypoint) and ca/ (empty, or extra.crt). Adding a runtime needs no change here.
#
# Env:
#   JETTY_BASE_IMAGE     base image; default node:22-bookworm-slim when present locally, else the
#                        locally made jetty-local/node:22-bookworm (docker/base/make-local-base.sh)
#   JETTY_EXTRA_CA_FILE  a PEM bundle to trust inside the images (an intercepting/corporate proxy);
#                        default: this machine's own bundle, /etc/ssl/certs/ca-certificates.crt,
#                        so image builds that fetch packages trust what the host trusts
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
runtimes_dir="$here/runtimes"
common_dir="$runtimes_dir/common"
build_root="$here/.build"

die() { echo "build-images: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (start dockerd, or run scripts/setup.sh)"

# The legacy builder works with every engine and CLI here; BuildKit needs the buildx plugin.
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

pick_base() {
  if [ -n "${JETTY_BASE_IMAGE:-}" ]; then
    docker image inspect "$JETTY_BASE_IMAGE" >/dev/null 2>&1 \
      || die "JETTY_BASE_IMAGE=$JETTY_BASE_IMAGE is not on this engine (docker pull or build it first)"
    echo "$JETTY_BASE_IMAGE"
  elif docker image inspect node:22-bookworm-slim >/dev/null 2>&1; then
    echo node:22-bookworm-slim
  else
    # No registry to pull from: make a Debian + Node base locally (idempotent, ~1 min the first time).
    bash "$here/base/make-local-base.sh" >&2
    echo "${JETTY_LOCAL_BASE_IMAGE:-jetty-local/node:22-bookworm}"
  fi
}

extra_ca=""
if [ -z "${JETTY_EXTRA_CA_FILE+set}" ] && [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  JETTY_EXTRA_CA_FILE=/etc/ssl/certs/ca-certificates.crt
fi
if [ -n "${JETTY_EXTRA_CA_FILE:-}" ]; then
  [ -s "$JETTY_EXTRA_CA_FILE" ] || die "JETTY_EXTRA_CA_FILE=$JETTY_EXTRA_CA_FILE is missing or empty"
  extra_ca="$JETTY_EXTRA_CA_FILE"
fi

# Everything that decides an image's content, hashed in a stable order.
inputs_hash() {
  local dir=$1 base_id=$2
  {
    echo "base $base_id"
    echo "extra-ca $( [ -n "$extra_ca" ] && sha256sum <"$extra_ca" | cut -d' ' -f1 || echo none)"
    (cd "$here" && find "runtimes/$(basename "$dir")" runtimes/common build-images.sh -type f -not -path "*/node_modules/*" -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

image_of() {
  local name
  name=$(sed -n '1s/^# jetty\.image: *\([^ ]*\) *$/\1/p' "$1/Dockerfile")
  [ -n "$name" ] || die "$1/Dockerfile must start with '# jetty.image: <repo>:<tag>'"
  echo "$name"
}

stage_context() {
  local dir=$1 ctx=$2
  mkdir -p "$ctx"
  rm -rf "$ctx/common" "$ctx/ca"
  cp -R "$common_dir" "$ctx/common"
  # The entrypoint must be executable in the image even from a checkout that dropped file modes.
  chmod 0755 "$ctx/common/entrypoint.sh" "$ctx/common/forwarder.js"
  mkdir -p "$ctx/ca"
  [ -z "$extra_ca" ] || cp "$extra_ca" "$ctx/ca/extra.crt"
  cp "$dir/Dockerfile" "$ctx/Dockerfile"
  if [ -f "$dir/package.json" ]; then
    [ -f "$dir/package-lock.json" ] || die "$dir has package.json but no package-lock.json"
    local want have
    want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
    have=$(cat "$ctx/node_modules/.jetty-stamp" 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
      cp "$dir/package.json" "$dir/package-lock.json" "$ctx/"
      # Host-side install; the image build itself needs no registry and no npm.
      (cd "$ctx" && npm ci --no-audit --no-fund --loglevel=error >"$ctx.npm-ci.log" 2>&1) || {
        tail -20 "$ctx.npm-ci.log" >&2; die "npm ci failed for $(basename "$dir")"; }
      echo "$want" >"$ctx/node_modules/.jetty-stamp"
    fi
  else
    mkdir -p "$ctx/node_modules"
  fi
}

build_runtime() {
  local name=$1 started dir ctx image base_id hash current network old_id build_args
  started=$(now)
  dir="$runtimes_dir/$name"
  [ -f "$dir/Dockerfile" ] || die "unknown runtime '$name' (no $dir/Dockerfile)"
  image=$(image_of "$dir")
  base_id=$(docker image inspect --format '{{.Id}}' "$base")
  hash=$(inputs_hash "$dir" "$base_id")

  current=$(docker image inspect --format '{{ index .Config.Labels "jetty.inputs" }}' "$image" 2>/dev/null || true)
  if [ "$current" = "$hash" ]; then
    echo "$name: $image up to date ($(elapsed "$started")s)"
    return
  fi

  ctx="$build_root/$name"
  stage_context "$dir" "$ctx"
  network=$(sed -n 's/^# jetty\.build-network: *\([a-z]*\).*$/\1/p' "$dir/Dockerfile" | head -1)
  build_args=(--build-arg "BASE=$base" --network "${network:-none}" --label "jetty.inputs=$hash" \
    --label "jetty.runtime=$name")
  [ -z "$extra_ca" ] || build_args+=(--build-arg "EXTRA_CA_CERTS=/usr/local/share/ca-certificates/extra.crt")
  old_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)

  # Logs sit beside the context, not in it.
  docker build "${build_args[@]}" -t "$image" "$ctx" >"$ctx.build.log" 2>&1 || {
    tail -30 "$ctx.build.log" >&2; die "docker build failed for $name (full log: $ctx.build.log)"; }

  # The previous image of this tag is now dangling: drop it unless a container still uses it.
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
  echo "$name: $image built ($(elapsed "$started")s)"
}

if [ "$#" -eq 0 ]; then
  # Every runtime directory (those with a Dockerfile), claude-code first: it is the default runtime.
  set -- claude-code
  for d in "$runtimes_dir"/*/; do
    name=$(basename "$d")
    [ "$name" != claude-code ] && [ -f "$d/Dockerfile" ] && set -- "$@" "$name"
  done
fi
base=$(pick_base)
for runtime in "$@"; do
  build_runtime "$runtime"
done
