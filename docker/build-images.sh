#!/usr/bin/env bash
# Builds the sandbox images: docker/build-images.sh [name ...]
# A sandbox is an *environment* image with an *agent layer* mounted into it (docs/environments.md):
#   agents/toolset            jetty/agent-toolset      what every agent layer shares
#   agents/<runtime>          jetty/agent-<runtime>    one per runtime: its CLI under /opt/jetty
#   environments/<snapshot>   jetty/env-<snapshot>     lean (the default), python312-uv, ...
# Names: a directory (agents/codex, environments/lean), or its image's short name (agent-codex,
# env-lean), or a runtime's name (codex). Default: all of them, in the order above.
# Idempotent: an image whose `jetty.inputs` label matches the hash of its inputs (its directory,
# the shared common/ beside it, this script, the extra CA and the ids of the images it is built
# from) is left alone, so a second run takes a few seconds.
#
# Each directory holds:
#   Dockerfile        required; its first line names the image: `# jetty.image: <repo>:<tag>`;
#                     an optional `# jetty.build-network: host` line lets its RUN steps reach
#                     package registries (default: none). Build args it may declare: BASE (the
#                     base chosen below for its kind), TOOLSET, PYTHON_ENV (jetty/env-python312-uv),
#                     NODE_BASE (the bookworm + Node base), EXTRA_CA_CERTS
#   package.json      optional; with package-lock.json, installed on the host with `npm ci` into
#   package-lock.json the staged context's node_modules/, which the Dockerfile COPYs
#   anything else     copied into the staged context (gitignored, docker/.build/<kind>-<name>/),
#                     with ../common/ as common/ and ca/ (empty, or extra.crt)
#
# Env:
#   JETTY_BASE_IMAGE         base of the agent layers' assembly and the lean environment; default
#                            node:22-bookworm-slim when present locally, else the locally made
#                            jetty-local/node:22-bookworm (docker/base/make-local-base.sh)
#   JETTY_PYTHON_BASE_IMAGE  base of the Python snapshots; default python:3.12-slim when present
#                            locally, else the locally made jetty-local/debian:trixie (Debian's
#                            Python 3.13; docker/base/make-local-trixie.sh)
#   JETTY_EXTRA_CA_FILE      a PEM bundle to trust inside the images (an intercepting/corporate
#                            proxy); default: this machine's own bundle,
#                            /etc/ssl/certs/ca-certificates.crt, so builds that fetch packages
#                            trust what the host trusts
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_root="$here/.build"

die() { echo "build-images: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (start dockerd, or run scripts/setup.sh)"

# The legacy builder works with every engine and CLI here; BuildKit needs the buildx plugin.
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

TOOLSET_IMAGE=jetty/agent-toolset:1
PYTHON_ENV_IMAGE=jetty/env-python312-uv:1

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

pick_python_base() {
  if [ -n "${JETTY_PYTHON_BASE_IMAGE:-}" ]; then
    docker image inspect "$JETTY_PYTHON_BASE_IMAGE" >/dev/null 2>&1 \
      || die "JETTY_PYTHON_BASE_IMAGE=$JETTY_PYTHON_BASE_IMAGE is not on this engine (docker pull or build it first)"
    echo "$JETTY_PYTHON_BASE_IMAGE"
  elif docker image inspect python:3.12-slim >/dev/null 2>&1; then
    echo python:3.12-slim
  else
    bash "$here/base/make-local-trixie.sh" >&2
    echo "${JETTY_LOCAL_TRIXIE_IMAGE:-jetty-local/debian:trixie}"
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

# Everything that decides an image's content, hashed in a stable order: its directory, the shared
# common/ of its kind, this script, the extra CA and the ids of the images given as build args.
inputs_hash() {
  local rel=$1
  shift
  {
    for ref in "$@"; do echo "arg $ref $(docker image inspect --format '{{.Id}}' "${ref#*=}")"; done
    echo "extra-ca $( [ -n "$extra_ca" ] && sha256sum <"$extra_ca" | cut -d' ' -f1 || echo none)"
    (cd "$here" && find "$rel" "$(dirname "$rel")/common" build-images.sh -type f \
      -not -path "*/node_modules/*" -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum)
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
  if [ -d "$(dirname "$dir")/common" ]; then cp -R "$(dirname "$dir")/common" "$ctx/common"; else mkdir "$ctx/common"; fi
  # Scripts must be executable in the image even from a checkout that dropped file modes.
  find "$ctx/common" -name '*.sh' -exec chmod 0755 {} +
  mkdir -p "$ctx/ca"
  [ -z "$extra_ca" ] || cp "$extra_ca" "$ctx/ca/extra.crt"
  find "$dir" -maxdepth 1 -type f -exec cp {} "$ctx/" \;
  if [ -f "$dir/package.json" ]; then
    [ -f "$dir/package-lock.json" ] || die "$dir has package.json but no package-lock.json"
    local want have
    want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
    have=$(cat "$ctx/node_modules/.jetty-stamp" 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
      # Host-side install; the image build itself needs no npm.
      (cd "$ctx" && npm ci --no-audit --no-fund --loglevel=error >"$ctx.npm-ci.log" 2>&1) || {
        tail -20 "$ctx.npm-ci.log" >&2; die "npm ci failed for $dir"; }
      echo "$want" >"$ctx/node_modules/.jetty-stamp"
    fi
  else
    mkdir -p "$ctx/node_modules"
  fi
}

# build_one <kind/name> [ARG=image ...]: the args are build args naming images (part of the hash).
build_one() {
  local rel=$1 started dir ctx image hash current network old_id build_args labels
  shift
  started=$(now)
  dir="$here/$rel"
  [ -f "$dir/Dockerfile" ] || die "nothing to build at $rel (no Dockerfile)"
  image=$(image_of "$dir")
  hash=$(inputs_hash "$rel" "$@")

  current=$(docker image inspect --format '{{ index .Config.Labels "jetty.inputs" }}' "$image" 2>/dev/null || true)
  if [ "$current" = "$hash" ]; then
    echo "$rel: $image up to date ($(elapsed "$started")s)"
    return
  fi

  ctx="$build_root/${rel//\//-}"
  stage_context "$dir" "$ctx"
  network=$(sed -n 's/^# jetty\.build-network: *\([a-z]*\).*$/\1/p' "$dir/Dockerfile" | head -1)
  build_args=(--network "${network:-none}" --label "jetty.inputs=$hash" --label "jetty.image=$image")
  for a in "$@"; do build_args+=(--build-arg "$a"); done
  [ -z "$extra_ca" ] || build_args+=(--build-arg "EXTRA_CA_CERTS=/usr/local/share/ca-certificates/extra.crt")
  old_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)

  # Logs sit beside the context, not in it.
  docker build "${build_args[@]}" -t "$image" "$ctx" >"$ctx.build.log" 2>&1 || {
    tail -30 "$ctx.build.log" >&2; die "docker build failed for $rel (full log: $ctx.build.log)"; }

  describe "$dir" "$image"

  # The previous image of this tag is now dangling: drop it unless a container still uses it.
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
  labels=$(docker image inspect --format '{{.Size}}' "$image")
  echo "$rel: $image built ($(elapsed "$started")s, $((labels / 1000000)) MB)"
}

# A `# jetty.describe: <shell command>` line: the command runs in the new image and prints
# `jetty.<name>=<value>` lines (its Python version, say), which become the image's labels, so
# that the image records what it has (read by the workers for GET /v1/snapshots).
describe() {
  local dir=$1 image=$2 cmd labels=()
  cmd=$(sed -n 's/^# jetty\.describe: *//p' "$dir/Dockerfile" | head -1)
  [ -n "$cmd" ] || return 0
  while IFS= read -r line; do
    case "$line" in jetty.*=*) labels+=(--label "$line") ;; esac
  done < <(docker run --rm --network none --user 0 --entrypoint sh "$image" -c "$cmd" 2>/dev/null)
  [ "${#labels[@]}" -gt 0 ] || die "$dir: its jetty.describe command printed no jetty.<name>=<value> line"
  echo "FROM $image" | docker build -q "${labels[@]}" -t "$image" - >/dev/null 2>&1 || die "$dir: labelling $image failed"
}

# What a name on the command line means, as a directory under docker/.
resolve() {
  case "$1" in
    agents/* | environments/*) echo "$1" ;;
    agent-*) echo "agents/${1#agent-}" ;;
    env-*) echo "environments/${1#env-}" ;;
    *) if [ -d "$here/agents/$1" ]; then echo "agents/$1"; else echo "environments/$1"; fi ;;
  esac
}

all() {
  echo agents/toolset
  # claude-code first: it is the default runtime.
  echo agents/claude-code
  for d in "$here"/agents/*/; do
    case "$(basename "$d")" in toolset | common | claude-code) ;; *) [ -f "$d/Dockerfile" ] && echo "agents/$(basename "$d")" ;; esac
  done
  echo environments/lean
  echo environments/python312-uv
  for d in "$here"/environments/*/; do
    case "$(basename "$d")" in common | lean | python312-uv) ;; *) [ -f "$d/Dockerfile" ] && echo "environments/$(basename "$d")" ;; esac
  done
}

if [ "$#" -eq 0 ]; then mapfile -t targets < <(all); else
  targets=()
  for n in "$@"; do targets+=("$(resolve "$n")"); done
fi

base=$(pick_base)
python_base=""
done_list=" "
# Each image once per invocation, after the images it is built from (idempotent when up to date).
ensure() {
  local rel=$1
  case "$done_list" in *" $rel "*) return ;; esac
  case "$rel" in
    agents/toolset) build_one "$rel" "BASE=$base" ;;
    agents/*)
      ensure agents/toolset
      build_one "$rel" "BASE=$base" "TOOLSET=$TOOLSET_IMAGE" ;;
    environments/lean) build_one "$rel" "BASE=$base" ;;
    environments/python312-uv)
      [ -n "$python_base" ] || python_base=$(pick_python_base)
      build_one "$rel" "BASE=$python_base" ;;
    environments/*)
      # The other snapshots build on python312-uv (and take Node from the bookworm base).
      ensure environments/python312-uv
      build_one "$rel" "BASE=$PYTHON_ENV_IMAGE" "NODE_BASE=$base" ;;
  esac
  done_list="$done_list$rel "
}
for rel in "${targets[@]}"; do ensure "$rel"; done
