#!/usr/bin/env bash
# Times `docker network create` and `docker network rm` for a mynet network
# and a Docker bridge network, interleaved, and prints medians and ratios.
# Needs a running mynet daemon on /run/docker/plugins/mynet.sock and dockerd.
# Usage: bench/network-latency.sh [ROUNDS]
set -euo pipefail
ROUNDS=${1:-15}
D=/usr/bin/docker
trap '$D network rm mynet-bench-nm mynet-bench-nb >/dev/null 2>&1 || true' EXIT
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
: >/tmp/bench-mc; : >/tmp/bench-mr; : >/tmp/bench-bc; : >/tmp/bench-br
for _ in $(seq "$ROUNDS"); do
  ms $D network create -d mynet --subnet 10.233.0.0/24 mynet-bench-nm >>/tmp/bench-mc
  ms $D network create -d bridge --subnet 10.234.0.0/24 mynet-bench-nb >>/tmp/bench-bc
  ms $D network rm mynet-bench-nm >>/tmp/bench-mr
  ms $D network rm mynet-bench-nb >>/tmp/bench-br
done
med() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%d (%d-%d)", a[int((NR+1)/2)], a[1], a[NR]}'; }
m1() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| metric (%d rounds, interleaved) | mynet | bridge | mynet/bridge |\n|---|---|---|---|\n' "$ROUNDS"
printf '| network create, median (min-max) ms | %s | %s | %.2f |\n' "$(med /tmp/bench-mc)" "$(med /tmp/bench-bc)" "$(echo "$(m1 /tmp/bench-mc) / $(m1 /tmp/bench-bc)" | bc -l)"
printf '| network rm, median (min-max) ms | %s | %s | %.2f |\n' "$(med /tmp/bench-mr)" "$(med /tmp/bench-br)" "$(echo "$(m1 /tmp/bench-mr) / $(m1 /tmp/bench-br)" | bc -l)"
