#!/usr/bin/env bash
# Makes sure Docker Compose v2 is here: scripts/compose.sh [--print-path]
# Compose v2 is not packaged for Debian 12, so it is built from its Go module (with the Go toolchain
# this machine has) into a cache, once per version, and linked as the Docker CLI plugin, so that
# `docker compose` works. Idempotent: a second run only checks (well under a second).
#   JETTY_COMPOSE_VERSION  the compose module version (default below)
#   JETTY_CACHE_DIR        where built tools are kept (default ~/.cache/jetty)
# --print-path prints the binary's path on stdout (everything else goes to stderr).
set -euo pipefail

version="${JETTY_COMPOSE_VERSION:-v2.40.3}"
cache="${JETTY_CACHE_DIR:-$HOME/.cache/jetty}/compose/$version"
bin="$cache/docker-compose"
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
say() { echo "compose: $*" >&2; }
die() { echo "compose: $*" >&2; exit 1; }

print_path=0
for arg in "$@"; do
  case "$arg" in
    --print-path) print_path=1 ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) die "unknown option $arg (try --help)" ;;
  esac
done

# A cached binary counts only when it runs and says it is this version.
built_ok() { [ -x "$bin" ] && "$bin" version --short 2>/dev/null | grep -qx "${version#v}"; }

if ! built_ok; then
  command -v go >/dev/null || die "building Compose $version needs the Go toolchain (go) on PATH"
  started=$(date +%s)
  say "building Docker Compose $version from its Go module (a few minutes the first time)"
  # `go install module@version` refuses this module (its go.mod has exclude directives), so the
  # module is downloaded and built in place.
  dir=$(go mod download -json "github.com/docker/compose/v2@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -n "$dir" ] && [ -d "$dir/cmd" ] || die "go mod download gave no module directory for compose $version"
  mkdir -p "$cache"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$version" \
    -o "$bin.tmp" ./cmd) || die "go build of compose $version failed"
  mv "$bin.tmp" "$bin"
  built_ok || die "the built binary does not report version $version"
  say "built $bin in $(($(date +%s) - started)) s"
fi

# The Docker CLI finds plugins by this path; a plugin someone else put there is left alone.
mkdir -p "$plugin_dir"
link="$plugin_dir/docker-compose"
if [ ! -e "$link" ] || [ "$(readlink "$link" 2>/dev/null || true)" != "$bin" ]; then
  if [ -e "$link" ] && [ ! -L "$link" ]; then
    say "left $link alone (not ours); $bin is the one this project tests with"
  else
    ln -sfn "$bin" "$link"
  fi
fi
[ "$print_path" = 1 ] && echo "$bin"
exit 0
