#!/usr/bin/env bash
# The e2e suite against Docker Engine 29 (engine.sh): the plain daemon and
# the managed plugin, then the plain daemon again, parity tests and all, with
# the engine's nftables firewall backend. The engine is stopped and removed
# at the end, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
E2E_PLUGIN=${E2E_PLUGIN:-mynet-e2e-plugin:latest}
E="bash test/engine/engine.sh"
trap '$E stop' EXIT

step() { echo "=== e2e against Engine 29: $*" >&2; }

$E start
step "plain daemon"
$E run "$GO" test -count=1 -v -timeout 20m ./test/e2e
step "managed plugin $E2E_PLUGIN"
$E run env MYNET_E2E_PLUGIN="$E2E_PLUGIN" "$GO" test -tags e2eplugin -count=1 -v -timeout 30m ./test/e2e
$E stop

$E start --firewall-backend=nftables
step "plain daemon, --firewall-backend=nftables"
$E run "$GO" test -count=1 -v -timeout 20m ./test/e2e
