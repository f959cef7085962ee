#!/usr/bin/env bash
# Prepares this host for mynet's end-to-end tests: packaging/host-deps.sh
# installs dockerd, iptables, busybox-static, iproute2 and curl when missing
# and starts dockerd when it is not running; then this builds the local
# busybox image the tests use (no registry is needed):
# busybox-static plus udpecho, a UDP listener built from test/e2e/udpecho.
# The image goes to the engine DOCKER_HOST names, if set.
# Safe to run again: every step checks before it acts.
set -euo pipefail

DOCKER=/usr/bin/docker   # the engine's own client (20.10), not a newer one elsewhere on PATH
IMAGE=${MYNET_TEST_IMAGE:-mynet-test/busybox:v2}
HERE=$(cd "$(dirname "$0")" && pwd)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

log() { echo "setup: $*" >&2; }

# dockerd and iptables as `make run` has them, plus the tests' own tools
# (libseccomp-dev: runc's seccomp, for the Engine 29 build that make test
# starts in the background, so that build never waits on apt).
# test/engine/engine.sh, which runs its own engine (DOCKER_HOST), has them
# already and only wants the image.
if [ -z "${MYNET_E2E_SKIP_HOST_DEPS:-}" ]; then
  bash "$HERE/../../packaging/host-deps.sh" busybox-static iproute2 curl iputils-ping nftables shellcheck tcpdump libseccomp-dev
fi
[ -x /bin/busybox ] || { log "busybox-static installed no /bin/busybox"; exit 1; }

if ! "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  log "building $IMAGE from /bin/busybox"
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp" "$dir/var/www"
  cp /bin/busybox "$dir/bin/busybox"
  for app in $(/bin/busybox --list); do
    [ "$app" = busybox ] || ln -sf busybox "$dir/bin/$app"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
  echo 'root:x:0:' >"$dir/etc/group"
  echo 'hello from mynet' >"$dir/var/www/index.html"
  # A UDP listener busybox lacks, built static from test/e2e/udpecho.
  (cd "$HERE/udpecho" && CGO_ENABLED=0 "$GO" build -trimpath -o "$dir/bin/udpecho" .)
  tar -C "$dir" -c . | "$DOCKER" import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
fi
log "ready: $("$DOCKER" version --format '{{.Server.Version}}'), image $IMAGE"
