#!/usr/bin/env bash
# Makes the two base images the Dockerfile needs from what this host has,
# so `make plugin` works without any registry:
#   mynet-build/go:local       Go from /usr/local/go, busybox as the shell,
#                              and an offline module proxy built from the
#                              host's module cache (filled by go mod download)
#   mynet-build/runtime:local  both iptables backends (xtables-nft-multi and
#                              xtables-legacy-multi) with their libraries and
#                              extensions, and busybox
# Each is made once; pass --force to remake them.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-/usr/bin/docker}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
force=${1:-}

have() { [ "$force" != --force ] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

busybox_into() { # busybox as /bin/sh and friends
  mkdir -p "$1/bin"
  cp /bin/busybox "$1/bin/busybox"
  for app in sh mkdir rm cp ls cat; do ln -sf busybox "$1/bin/$app"; done
}

if ! have mynet-build/go:local; then
  echo "base-images: making mynet-build/go:local" >&2
  "$GO" mod download
  dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
  busybox_into "$dir"
  mkdir -p "$dir/usr/local" "$dir/goproxy" "$dir/tmp" "$dir/root"
  cp -a "$(dirname "$(dirname "$(readlink -f "$GO")")")" "$dir/usr/local/go"
  cp -a "$("$GO" env GOMODCACHE)/cache/download/." "$dir/goproxy/"
  tar -C "$dir" -c . | "$DOCKER" import \
    -c 'ENV PATH=/usr/local/go/bin:/bin HOME=/root GOPATH=/root/go GOPROXY=file:///goproxy GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=mod' \
    - mynet-build/go:local >/dev/null
  rm -rf "$dir"; trap - EXIT
fi

if ! have mynet-build/runtime:local; then
  echo "base-images: making mynet-build/runtime:local" >&2
  command -v xtables-nft-multi >/dev/null && command -v xtables-legacy-multi >/dev/null || {
    echo "base-images: the iptables package (both backends) must be installed on this host" >&2; exit 1; }
  dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
  busybox_into "$dir"
  mkdir -p "$dir/usr/sbin" "$dir/etc" "$dir/tmp" "$dir/run"
  files=("$(command -v xtables-nft-multi)" "$(command -v xtables-legacy-multi)")
  xtdir=$(dirname "$(find /usr/lib /lib -name libxt_comment.so -print -quit)")
  files+=("$xtdir"/*.so)
  for f in "${files[@]}"; do
    cp -aL --parents "$f" "$dir/"
    ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /^\t\// {print $1}' | while read -r lib; do
      [ -n "$lib" ] && [ -e "$lib" ] && cp -aL --parents "$lib" "$dir/" || true
    done
  done
  for fam in iptables ip6tables; do
    for be in nft legacy; do
      for suffix in "" -save -restore; do
        ln -sf "xtables-$be-multi" "$dir/usr/sbin/$fam-$be$suffix"
      done
    done
    for suffix in "" -save -restore; do ln -sf "xtables-nft-multi" "$dir/usr/sbin/$fam$suffix"; done
  done
  cp /etc/protocols /etc/ethertypes "$dir/etc/" 2>/dev/null || true
  tar -C "$dir" -c . | "$DOCKER" import -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - mynet-build/runtime:local >/dev/null
  rm -rf "$dir"; trap - EXIT
fi
