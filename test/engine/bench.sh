#!/usr/bin/env bash
# make bench's second engine: the benchmark against Docker Engine 29
# (engine.sh). With BENCH_PART it writes make bench's second part (which
# make bench joins into docs/benchmarks.md); alone, a whole document of this
# engine to BENCH_OUT (default /tmp/mynet-bench-engine29.md). Arguments go
# to the benchmark (e.g. -only 5,6). Workloads 10-14 (multi-host) do not
# involve this engine and run in the first pass only.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
E="bash test/engine/engine.sh"
# The engine's namespace has no way out: what the benchmark's images are
# made from (busybox, iperf3 and their libraries, the docker client) is
# installed on the host first, as the e2e passes do, and not again there.
bash packaging/host-deps.sh --no-docker docker.io iptables busybox-static iproute2 curl iputils-ping nftables tcpdump libseccomp-dev iperf3
trap '$E stop' EXIT
$E start
if [ -n "${BENCH_PART:-}" ]; then
	out=(-part "$BENCH_PART")
else
	out=(-out "${BENCH_OUT:-/tmp/mynet-bench-engine29.md}")
fi
$E run env MYNET_E2E_SKIP_HOST_DEPS=1 "$GO" run ./test/bench "${out[@]}" -only "${BENCH_ONLY:-1,2,3,4,5,6,7,8,9}" "$@"
