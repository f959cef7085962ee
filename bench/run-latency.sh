#!/usr/bin/env bash
# Times `docker run --rm --network N busybox true` on a mynet network and on a
# Docker bridge network, interleaved (A B A B ...) so machine drift hits both,
# and prints median / min / max per driver and the mynet/bridge ratio.
# Needs a running mynet daemon on /run/docker/plugins/mynet.sock and dockerd
# (test/e2e/setup.sh starts dockerd and builds the image).
# Usage: bench/run-latency.sh [ROUNDS]
set -euo pipefail
ROUNDS=${1:-20}
D=/usr/bin/docker
IMAGE=mynet-test/busybox:v2
cleanup() { $D network rm mynet-bench-m mynet-bench-b >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
$D network create -d mynet --subnet 10.231.0.0/24 mynet-bench-m >/dev/null
$D network create -d bridge --subnet 10.232.0.0/24 mynet-bench-b >/dev/null
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
$D run --rm --network none $IMAGE true >/dev/null   # warm the image cache
: >/tmp/bench-m; : >/tmp/bench-b; : >/tmp/bench-n
for _ in $(seq "$ROUNDS"); do
  ms $D run --rm --network mynet-bench-m $IMAGE true >>/tmp/bench-m
  ms $D run --rm --network mynet-bench-b $IMAGE true >>/tmp/bench-b
  ms $D run --rm --network none $IMAGE true >>/tmp/bench-n
done
stats() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%d %d %d", a[int((NR+1)/2)], a[1], a[NR]}'; }
read -r mm mmin mmax <<<"$(stats /tmp/bench-m)"
read -r bm bmin bmax <<<"$(stats /tmp/bench-b)"
read -r nm nmin nmax <<<"$(stats /tmp/bench-n)"
printf '| metric (%d rounds, interleaved) | mynet | bridge | none | mynet/bridge |\n|---|---|---|---|---|\n' "$ROUNDS"
printf '| docker run --rm true, median (min-max) ms | %d (%d-%d) | %d (%d-%d) | %d (%d-%d) | %.2f |\n' \
  "$mm" "$mmin" "$mmax" "$bm" "$bmin" "$bmax" "$nm" "$nmin" "$nmax" "$(echo "$mm / $bm" | bc -l)"
printf '| attach cost (median minus none) ms | %d | %d | | %.2f |\n' \
  $((mm - nm)) $((bm - nm)) "$(echo "($mm - $nm) / ($bm - $nm)" | bc -l)"
