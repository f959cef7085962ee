#!/usr/bin/env bash
# The e2e suite against Docker Engine 29 (engine.sh): the plain daemon and
# the managed plugin, then the plain daemon again, parity tests and all, with
# the engine's nftables firewall backend. The engine is stopped and removed
# at the end, pass or fail.
#
# What a fresh machine does runs here on every machine: the engine's data
# root is new at each start, so the busybox image and the plugin's base
# images are made anew in each pass, and the last pass starts from an empty
# engine cache of its own, so the engine is built again (from the warm Go
# build cache: about a minute) and started by that same process, as on a
# machine that has never built it.
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

# The managed plugin's build image (packaging/base-images.sh) carries an
# offline module proxy made from this host's module cache, and inside the
# engine's namespace there is no network: every module go.sum names must be
# in the cache first, the Windows-only ones of Docker's API client too,
# which no Linux build here downloads (a fresh machine's CI failed there).
"$GO" mod download

$E start
step "plain daemon"
$E run "$GO" test -count=1 -v -timeout 20m ./test/e2e
step "managed plugin $E2E_PLUGIN"
$E run env MYNET_E2E_PLUGIN="$E2E_PLUGIN" "$GO" test -tags e2eplugin -count=1 -v -timeout 30m ./test/e2e
$E stop

step "start from an empty engine cache ($fresh_cache)"
ENGINE_CACHE=$fresh_cache $E start --firewall-backend=nftables
step "plain daemon, --firewall-backend=nftables"
$E run "$GO" test -count=1 -v -timeout 20m ./test/e2e
