#!/usr/bin/env bash
# make bench's second engine: the benchmark against Docker Engine 29
# (engine.sh), appended to docs/benchmarks.md as a section of its own.
# Arguments go to the benchmark (e.g. -only 5,6). Workload 10 (multi-host)
# does not involve an engine and runs in the first pass only.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
E="bash test/engine/engine.sh"
trap '$E stop' EXIT
$E start
$E run "$GO" run ./test/bench -append -only "${BENCH_ONLY:-1,2,3,4,5,6,7,8,9}" "$@"
