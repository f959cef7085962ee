#!/usr/bin/env bash
# Builds the managed plugin without any registry: the image from the
# Dockerfile (on local base images unless GO_IMAGE/RUNTIME_IMAGE say
# otherwise), its filesystem exported as the plugin's rootfs, and
# `docker plugin create`. Usage: build-plugin.sh NAME VERSION. The plugin's
# directory is dist/plugin, or MYNET_PLUGIN_DIR (an absolute path: two
# builds side by side, as make test's e2e passes on two engines).
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-/usr/bin/docker}
name=${1:-mynet:latest}
version=${2:-dev}
LOCAL_GO_IMAGE=mynet-build/go:local-$(sha256sum go.sum | cut -c1-12) # made by base-images.sh
GO_IMAGE=${GO_IMAGE:-$LOCAL_GO_IMAGE}
RUNTIME_IMAGE=${RUNTIME_IMAGE:-mynet-build/runtime:local}
if [ "$GO_IMAGE" = "$LOCAL_GO_IMAGE" ] || [ "$RUNTIME_IMAGE" = mynet-build/runtime:local ]; then
  bash packaging/base-images.sh
fi
image=mynet-build/plugin-rootfs:$version
DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$image" \
  --build-arg GO_IMAGE="$GO_IMAGE" --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" --build-arg VERSION="$version" . >/dev/null
dir=${MYNET_PLUGIN_DIR:-dist/plugin}
rm -rf "$dir"
mkdir -p "$dir/rootfs"
cid=$("$DOCKER" create "$image")
trap '"$DOCKER" rm -f "$cid" >/dev/null' EXIT
"$DOCKER" export "$cid" | tar -x -C "$dir/rootfs"
cp config.json "$dir/"
if "$DOCKER" plugin inspect "$name" >/dev/null 2>&1; then
  echo "build-plugin: $name exists; remove it first (make plugin-remove), or upgrade it (see README)" >&2
  exit 1
fi
"$DOCKER" plugin create "$name" "$dir" >/dev/null
echo "build-plugin: created $name (disabled); enable it with: docker plugin enable $name" >&2
