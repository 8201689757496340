#!/usr/bin/env bash
# Makes a plain Debian trixie base image locally (Debian's Python 3.13 lives there), for machines
# that cannot pull from a container registry: the Python snapshots' base when python:3.12-slim is
# not on the engine. Idempotent: does nothing when the image already exists with the same inputs.
set -euo pipefail

IMAGE="${JETTY_LOCAL_TRIXIE_IMAGE:-jetty-local/debian:trixie}"
inputs_hash=$(printf '%s\n' trixie "$(sha256sum "$0" | cut -d' ' -f1)" | sha256sum | cut -c1-16)

existing=$(docker image inspect --format '{{ index .Config.Labels "jetty.inputs" }}' "$IMAGE" 2>/dev/null || true)
if [ "$existing" = "$inputs_hash" ]; then
  echo "base image $IMAGE is up to date"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "making $IMAGE with debootstrap (about a minute)"
debootstrap --variant=minbase trixie "$work/rootfs" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work/rootfs/var/cache/apt/archives"/*.deb "$work/rootfs/var/lib/apt/lists"/*

tar -C "$work/rootfs" -c . | docker import \
  --change "LABEL jetty.inputs=$inputs_hash" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "made $IMAGE"
