#!/usr/bin/env bash
# Prepares this host for mynet's end-to-end tests: installs dockerd, iptables
# and busybox-static when missing, starts dockerd when it is not running, and
# builds the local busybox image the tests use (no registry is needed):
# busybox-static plus udpecho, a UDP listener built from test/e2e/udpecho.
# Safe to run again: every step checks before it acts.
set -euo pipefail

DOCKER=/usr/bin/docker   # the engine's own client (20.10), not a newer one elsewhere on PATH
IMAGE=${MYNET_TEST_IMAGE:-mynet-test/busybox:v2}
HERE=$(cd "$(dirname "$0")" && pwd)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/mynet-test-dockerd.log}

log() { echo "setup: $*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x "$DOCKER" ] || need_pkgs+=(docker.io)
command -v iptables >/dev/null 2>&1 || need_pkgs+=(iptables)
command -v iptables-save >/dev/null 2>&1 || need_pkgs+=(iptables)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
  log "starting dockerd (log: $DOCKERD_LOG)"
  # setsid: dockerd must outlive this script, and must not share its process group.
  setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    "$DOCKER" info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! "$DOCKER" info >/dev/null 2>&1; then
    log "dockerd did not come up; last lines of its log:"
    tail -n 30 "$DOCKERD_LOG" >&2 || true
    exit 1
  fi
fi

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
