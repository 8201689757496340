#!/bin/sh
# Run last in each agent image's assembly stage: checks the layer and records what it needs.
#   /opt/jetty/ELF_LIST   the layer's dynamically linked programs and libraries (outside
#                         site-packages): the environment probe asks the environment's own
#                         dynamic loader to resolve each (ld.so --list), so an environment whose
#                         glibc is too old is refused with the loader's own reason
#   /opt/jetty/RUNTIME    the runtime's name and CLI version, for people looking inside a volume
set -eu
jetty=/opt/jetty
[ -x "$jetty/agent-bin/$1" ] || { echo "finish-layer: $jetty/agent-bin/$1 is missing" >&2; exit 1; }
find "$jetty" -type f -size +1k -not -path '*/site-packages/*' | sort | while read -r f; do
  [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
  # Static programs (busybox, codex's musl build) need nothing from the environment.
  ldd "$f" >/dev/null 2>&1 && echo "$f"
done >"$jetty/ELF_LIST"
echo "$1 $2" >"$jetty/RUNTIME"
chmod -R a+rX,go-w "$jetty"
