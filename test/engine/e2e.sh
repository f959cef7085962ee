#!/usr/bin/env bash
# The e2e suite against Docker Engine 29 (engine.sh), in two passes: the
# managed plugin on the engine's iptables firewall, then the plain daemon,
# parity tests and all, on its nftables firewall. With the host engine's
# two passes (Debian's 20.10, iptables: plain daemon, then managed plugin),
# every pair is covered: each engine with each way of running mynet, each
# firewall with each way. The engine is stopped and removed at the end,
# pass or fail.
#
# What a fresh machine does runs here on every machine: the engine's data
# root is new at each start, so the busybox image and the plugin's runtime
# image are made anew in each pass, and the second pass starts from an
# empty engine cache of its own, so the engine is built again (from the
# warm Go build cache: seconds) and started by that same process, as on a
# machine that has never built it.
#
# The managed plugin here is made around a mynet binary built on the host,
# with its Go build cache (build-plugin.sh MYNET_BINARY), not compiled in
# the image: the host engine's pass builds the whole Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
E2E_PLUGIN=${E2E_PLUGIN:-mynet-e2e-plugin:latest}
E="bash test/engine/engine.sh"
fresh_cache=$(mktemp -d /var/tmp/mynet-e2e-engine-cache.XXXXXX)
# make test runs these passes beside the host engine's: what the suite names
# on the machine as a whole (the outside namespace, the plugin's build
# directory) gets names of this run's own.
plugin_dir=$(mktemp -d /var/tmp/mynet-e2e-plugin.XXXXXX)
export MYNET_E2E_NETNS_SUFFIX=-e29 MYNET_PLUGIN_DIR=$plugin_dir/plugin
trap '$E stop; rm -rf "$fresh_cache" "$plugin_dir"' EXIT

step() { echo "=== e2e against Engine 29: $*" >&2; }

step "managed plugin $E2E_PLUGIN (iptables)"
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X main.version=e2e" -o "$plugin_dir/mynet" .
$E start
$E run env MYNET_E2E_PLUGIN="$E2E_PLUGIN" MYNET_BINARY="$plugin_dir/mynet" \
  "$GO" test -tags e2eplugin -count=1 -v -timeout 30m ./test/e2e
$E stop

step "start from an empty engine cache ($fresh_cache)"
ENGINE_CACHE=$fresh_cache $E start --firewall-backend=nftables
step "plain daemon, --firewall-backend=nftables"
$E run "$GO" test -count=1 -v -timeout 20m ./test/e2e
