#!/usr/bin/env bash
# Builds mynet-bench/tools:1, the benchmark's container image, from this
# host without a registry: busybox, iperf3 (Debian's, with its libraries)
# and rr (test/bench/rr, a TCP request/response timer). Made once.
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCKER=${DOCKER:-/usr/bin/docker}
IMAGE=mynet-bench/tools:1
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
"$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 && exit 0
command -v iperf3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null; }
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
cp /bin/busybox "$dir/bin/busybox"
for app in $(/bin/busybox --list); do [ "$app" = busybox ] || ln -sf busybox "$dir/bin/$app"; done
for l in lib lib64; do [ -L "/$l" ] && ln -s "$(readlink "/$l")" "$dir/$l"; done
put() { local d; d=$(readlink -f "$(dirname "$1")"); mkdir -p "$dir$d"; cp -L "$1" "$dir$d/$(basename "$1")"; }
bin=$(command -v iperf3)
put "$bin"
for lib in $(ldd "$bin" | awk '/=>/ {print $3} /^[[:space:]]*\// {print $1}'); do [ -e "$lib" ] && put "$lib"; done
(cd test/bench/rr && CGO_ENABLED=0 "$GO" build -trimpath -o "$dir/bin/rr" .)
echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
tar -C "$dir" -c . | "$DOCKER" import -c "ENV PATH=$(dirname "$(readlink -f "$bin")"):/bin" -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
echo "bench: built $IMAGE" >&2
