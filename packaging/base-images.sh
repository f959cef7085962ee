#!/usr/bin/env bash
# Makes the two base images the Dockerfile needs from what this host has,
# so `make plugin` works without any registry:
#   mynet-build/go:local-<go.sum hash>
#                              Go from /usr/local/go, busybox as the shell,
#                              and an offline module proxy built from the
#                              host's module cache (filled by go mod download);
#                              tagged by go.sum, so a new dependency makes a
#                              new image
#   mynet-build/runtime:local  both iptables backends (xtables-nft-multi and
#                              xtables-legacy-multi) with their libraries and
#                              extensions, and busybox
# Each is made once; pass --force to remake them, --runtime-only to make the
# runtime image alone (for a plugin around a binary built already).
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-/usr/bin/docker}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
force=${1:-}
GO_IMAGE=mynet-build/go:local-$(sha256sum go.sum | cut -c1-12)

have() { [ "$force" != --force ] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

busybox_into() { # busybox as /bin/sh and friends
  mkdir -p "$1/bin"
  cp /bin/busybox "$1/bin/busybox"
  for app in sh mkdir rm cp ls cat; do ln -sf busybox "$1/bin/$app"; done
}

if [ "$force" != --runtime-only ] && ! have "$GO_IMAGE"; then
  echo "base-images: making $GO_IMAGE" >&2
  "$GO" mod download
  dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
  busybox_into "$dir"
  mkdir -p "$dir/usr/local" "$dir/goproxy" "$dir/tmp" "$dir/root"
  cp -a "$(dirname "$(dirname "$(readlink -f "$GO")")")" "$dir/usr/local/go"
  cp -a "$("$GO" env GOMODCACHE)/cache/download/." "$dir/goproxy/"
  tar -C "$dir" -c . | "$DOCKER" import \
    -c 'ENV PATH=/usr/local/go/bin:/bin HOME=/root GOPATH=/root/go GOPROXY=file:///goproxy GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=mod' \
    - "$GO_IMAGE" >/dev/null
  rm -rf "$dir"; trap - EXIT
fi

if ! have mynet-build/runtime:local; then
  echo "base-images: making mynet-build/runtime:local" >&2
  if ! { command -v xtables-nft-multi && command -v xtables-legacy-multi; } >/dev/null; then
    echo "base-images: the iptables package (both backends) must be installed on this host" >&2; exit 1
  fi
  dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
  busybox_into "$dir"
  mkdir -p "$dir/etc" "$dir/tmp" "$dir/run"
  files=("$(command -v xtables-nft-multi)" "$(command -v xtables-legacy-multi)")
  xtdir=$(dirname "$(find /usr/lib /lib -name libxt_comment.so -print -quit)")
  files+=("$xtdir"/*.so)
  # Debian is merged-/usr: keep its lib -> usr/lib links, and copy every
  # file to its resolved directory under the name it is asked for by.
  for l in lib lib64; do
    if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$dir/$l"; fi
  done
  put() {
    local d
    d=$(readlink -f "$(dirname "$1")")
    mkdir -p "$dir$d"
    cp -L "$1" "$dir$d/$(basename "$1")"
  }
  for f in "${files[@]}"; do
    put "$f"
    for lib in $(ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /^[[:space:]]*\// {print $1}'); do
      [ -e "$lib" ] && put "$lib"
    done
  done
  sbin=$(readlink -f "$(dirname "$(command -v xtables-nft-multi)")")
  for fam in iptables ip6tables; do
    for be in nft legacy; do
      for suffix in "" -save -restore; do
        ln -sf "xtables-$be-multi" "$dir$sbin/$fam-$be$suffix"
      done
    done
    for suffix in "" -save -restore; do ln -sf "xtables-nft-multi" "$dir$sbin/$fam$suffix"; done
  done
  cp /etc/protocols /etc/ethertypes "$dir/etc/" 2>/dev/null || true
  tar -C "$dir" -c . | "$DOCKER" import -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' - mynet-build/runtime:local >/dev/null
  rm -rf "$dir"; trap - EXIT
fi
