#!/usr/bin/env bash
# Builds the managed plugin without any registry: the image from the
# Dockerfile (on local base images unless GO_IMAGE/RUNTIME_IMAGE say
# otherwise), its filesystem exported as the plugin's rootfs, and
# `docker plugin create`. Usage: build-plugin.sh NAME VERSION. The plugin's
# directory is dist/plugin, or MYNET_PLUGIN_DIR (an absolute path: two
# builds side by side, as make test's e2e passes on two engines).
#
# MYNET_BINARY=PATH takes a mynet binary built already (CGO_ENABLED=0, as
# the Dockerfile builds it) instead of compiling one in the image: only the
# Dockerfile's runtime stage is built, from the Dockerfile itself, around
# that binary. (make test's Engine 29 pass does, with the host's Go build
# cache; the host engine's pass builds the whole Dockerfile.)
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-/usr/bin/docker}
name=${1:-mynet:latest}
version=${2:-dev}
LOCAL_GO_IMAGE=mynet-build/go:local-$(sha256sum go.sum | cut -c1-12) # made by base-images.sh
GO_IMAGE=${GO_IMAGE:-$LOCAL_GO_IMAGE}
RUNTIME_IMAGE=${RUNTIME_IMAGE:-mynet-build/runtime:local}
image=mynet-build/plugin-rootfs:$version
dir=${MYNET_PLUGIN_DIR:-dist/plugin}
if [ -n "${MYNET_BINARY:-}" ]; then
  [ "$RUNTIME_IMAGE" != mynet-build/runtime:local ] || bash packaging/base-images.sh --runtime-only
  ctx=$(mktemp -d)
  cp "$MYNET_BINARY" "$ctx/mynet"
  # The runtime stage as the Dockerfile has it, its binary from the context.
  { grep '^ARG RUNTIME_IMAGE' Dockerfile
    sed -n '/^FROM ${RUNTIME_IMAGE}/,$p' Dockerfile | sed 's|^COPY --from=build /out/mynet |COPY mynet |'
  } >"$ctx/Dockerfile"
  if ! grep -q '^COPY mynet /usr/bin/mynet$' "$ctx/Dockerfile"; then
    rm -rf "$ctx"
    echo "build-plugin: the Dockerfile's runtime stage no longer copies /out/mynet from the build stage; MYNET_BINARY cannot be used" >&2
    exit 1
  fi
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$image" --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" "$ctx" >/dev/null ||
    { rm -rf "$ctx"; exit 1; }
  rm -rf "$ctx"
else
  if [ "$GO_IMAGE" = "$LOCAL_GO_IMAGE" ] || [ "$RUNTIME_IMAGE" = mynet-build/runtime:local ]; then
    bash packaging/base-images.sh
  fi
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$image" \
    --build-arg GO_IMAGE="$GO_IMAGE" --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" --build-arg VERSION="$version" . >/dev/null
fi
rm -rf "$dir"
mkdir -p "$dir/rootfs"
cid=$("$DOCKER" create "$image")
# The image was only the way to the rootfs: it goes with its container, so
# that builds leave no image behind (the base images stay, made once).
trap '"$DOCKER" rm -f "$cid" >/dev/null; "$DOCKER" rmi "$image" >/dev/null' EXIT
"$DOCKER" export "$cid" | tar -x -C "$dir/rootfs"
cp config.json "$dir/"
if "$DOCKER" plugin inspect "$name" >/dev/null 2>&1; then
  echo "build-plugin: $name exists; remove it first (make plugin-remove), or upgrade it (see README)" >&2
  exit 1
fi
"$DOCKER" plugin create "$name" "$dir" >/dev/null
echo "build-plugin: created $name (disabled); enable it with: docker plugin enable $name" >&2
