# mynet — see README.md. Every target runs as root on a Debian host.
GO          ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOBIN       ?= $(shell $(GO) env GOPATH)/bin
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
SHELLCHECK  := /usr/bin/shellcheck
FUZZN       ?= 100000
# Packages that need no dockerd (unit tests, and kernel integration tests in
# private network namespaces).
PKGS        = $(shell $(GO) list ./... | grep -v /test/e2e)

export PATH := $(dir $(GO)):$(GOBIN):$(PATH)

# The managed plugin's name for users (make plugin, plugin-enable, ...).
PLUGIN      ?= mynet:latest
# The tests' own plugin: built, used and removed by make e2e-plugin, so a
# user's $(PLUGIN) is never touched.
E2E_PLUGIN  ?= mynet-e2e-plugin:latest
DOCKER      ?= /usr/bin/docker

.PHONY: all build run host-deps test deps lint unit integration fuzz e2e e2e-plugin e2e-engine29 e2e-cluster engine29 test-unit clean install bench soak \
        plugin plugin-enable plugin-disable plugin-remove plugin-upgrade plugin-push

all: build

build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/mynet .

# Install what the daemon needs (docker.io, iptables) when missing, start
# dockerd when it is not running, then build and run the daemon in the
# foreground on Docker's plugin directory. Stop it with Ctrl-C (networks and
# containers keep working meanwhile).
run: host-deps build
	./bin/mynet $(ARGS)

host-deps:
	bash packaging/host-deps.sh

# The whole suite: host setup, lint, unit + kernel integration tests,
# short fuzzing, and the end-to-end tests through a real dockerd, against
# the plain daemon and then against the managed plugin: first the host's
# Debian dockerd (20.10), then Docker Engine 29 (built once, cached), then
# several Engine 29 hosts of one cluster. The Engine 29 step (its build on
# a cache miss, then its passes) runs in the background beside the host
# engine's passes ('&' steps, waited for at "wait"): its build (a cache
# miss on a fresh machine: 15 minutes of the two cores) starts first, beside
# lint, and its passes wait for it after the kernel integration tests.
# Each step's time is printed at the end (test/steps.sh).
# The cluster step creates the managed plugin on its engines from the
# directory the e2e-plugin step built (dist/plugin) rather than build it
# again. (Run beside the Engine 29 passes, on 2 cores, a repair-on-event
# test there missed its event once: it runs after them.)
test:
	MAKE="$(MAKE)" MYNET_E2E_PLUGIN_DIR=$(CURDIR)/dist/plugin bash test/steps.sh deps '&engine29' lint integration '&e2e-engine29' fuzz e2e e2e-plugin wait e2e-cluster

# host-deps plus the tests' tools (busybox-static, iproute2, curl), and the
# local busybox test image.
deps:
	bash test/e2e/setup.sh

lint: $(STATICCHECK) $(SHELLCHECK)
	SHELLCHECK=$(SHELLCHECK) bash test/lint-shell.sh
	bash test/lint-tree.sh
	@# The rule a machine without staticcheck takes, into a throwaway GOBIN
	@# (from the warm build cache, seconds), so a broken install shows here.
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(MAKE) -s --no-print-directory GOBIN=$$tmp $$tmp/staticcheck && $$tmp/staticcheck -version
	@out=$$(gofmt -l .) && test -z "$$out" || { echo "gofmt needed (or failed):"; echo "$$out"; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) vet -tags e2eplugin ./test/e2e
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags e2eplugin ./test/e2e

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(SHELLCHECK):
	bash packaging/host-deps.sh --no-docker shellcheck

# Every package's tests but the e2e suites, as root: the unit tests and the
# kernel integration tests (TestKernel*, test/integration, test/multihost).
integration:
	$(GO) test -race -count=1 $(PKGS)

# Unit tests only: no root, no kernel (for a quick loop). Every package but
# the integration and e2e suites, without the tests that change the kernel
# (named TestKernel*; make integration runs them). test-unit is its
# earlier name.
unit test-unit:
	$(GO) test -race -count=1 -skip '^TestKernel' $(shell $(GO) list ./... | grep -v -e /test/e2e -e /test/integration -e /test/multihost)

fuzz:
	GO=$(GO) bash test/fuzz.sh ./driver FuzzParseNetworkConfig $(FUZZN)
	GO=$(GO) bash test/fuzz.sh ./driver FuzzParsePortMap $(FUZZN)
	GO=$(GO) bash test/fuzz.sh ./plugin FuzzDecodeRequests $(FUZZN)

e2e: deps
	$(GO) test -count=1 -v -timeout 20m ./test/e2e

# mynet against Docker's bridge, side by side, on the host's dockerd and then
# on Engine 29 (test/engine/bench.sh), each pass a part; the parts joined
# write the whole of docs/benchmarks.md (nothing in it is kept by hand).
# BENCH_ARGS=-rounds=5 -containers=60 -networks=60 for a quicker run.
BENCH_PARTS ?= /tmp/mynet-bench-parts
bench: deps
	rm -rf $(BENCH_PARTS) && mkdir -p $(BENCH_PARTS)
	$(GO) run ./test/bench -part $(BENCH_PARTS)/1-host.md $(BENCH_ARGS)
	GO=$(GO) BENCH_PART=$(BENCH_PARTS)/2-engine29.md bash test/engine/bench.sh $(BENCH_ARGS)
	$(GO) run ./test/bench -assemble -out docs/benchmarks.md $(BENCH_PARTS)/1-host.md $(BENCH_PARTS)/2-engine29.md

# The end-to-end suite again, against the managed plugin $(E2E_PLUGIN),
# which the suite builds from this tree and removes at the end.
e2e-plugin: deps
	MYNET_E2E_PLUGIN=$(E2E_PLUGIN) $(GO) test -tags e2eplugin -count=1 -v -timeout 30m ./test/e2e

# The e2e suite against Docker Engine 29, run in a network namespace of its
# own (test/engine/engine.sh): the managed plugin on the engine's iptables,
# then the plain daemon (parity tests included) on its nftables backend.
e2e-engine29: deps
	GO=$(GO) E2E_PLUGIN=$(E2E_PLUGIN) bash test/engine/e2e.sh

# Multi-host networks on real engines: several Engine 29 hosts on this
# machine, each a dockerd in namespaces of its own with its own mynet, an
# underlay and a real etcd (test/e2e/twohosts): the overlay walk-through
# (with the plain daemon and with the managed plugin), a host that joins
# later, removal, a dockerd restart, a create racing on two hosts, dockerd
# on nftables, and a cluster mixing Debian's 20.10 with Engine 29.
e2e-cluster: deps
	$(GO) test -count=1 -v -timeout 30m ./test/e2e/twohosts

# Build Engine 29's binaries (cached in /var/cache/mynet-engines).
engine29:
	GO=$(GO) bash test/engine/engine.sh build

# The data-loss soak of test/multihost (TestDataLossSoak) over SOAK_SEEDS
# seeded random schedules of SOAK_STEPS steps (make test runs two). Each
# seed is printed; MYNET_SOAK_SEED=S go test -run TestDataLossSoak
# ./test/multihost runs one again.
SOAK_SEEDS ?= 20
SOAK_STEPS ?= 40
soak: deps
	MYNET_SOAK_SEEDS=$(SOAK_SEEDS) MYNET_SOAK_STEPS=$(SOAK_STEPS) $(GO) test -count=1 -v -timeout 90m -run TestDataLossSoak ./test/multihost

# Managed plugin: build (no registry needed), enable, disable, remove.
plugin:
	bash packaging/build-plugin.sh $(PLUGIN) $(VERSION)

plugin-enable:
	$(DOCKER) plugin enable $(PLUGIN)

plugin-disable:
	$(DOCKER) plugin disable $(PLUGIN)

plugin-remove:
	-$(DOCKER) plugin disable $(PLUGIN)
	$(DOCKER) plugin rm $(PLUGIN)

# Replace the installed plugin by one built from this tree, keeping networks
# (their state is on the host, in the plugin's state mount).
plugin-upgrade:
	$(DOCKER) plugin disable -f $(PLUGIN)
	$(DOCKER) plugin rm -f $(PLUGIN)
	$(MAKE) plugin
	$(MAKE) plugin-enable

# Push to a registry: PLUGIN=registry.example/you/mynet:1.0 make plugin plugin-push
plugin-push:
	$(DOCKER) plugin push $(PLUGIN)

# Plain daemon under systemd: binary, units, docs.
install: build
	install -m 0755 bin/mynet /usr/local/bin/mynet
	install -m 0644 packaging/mynet.service /etc/systemd/system/mynet.service
	install -m 0644 packaging/mynet.socket /etc/systemd/system/mynet.socket
	install -D -m 0644 README.md /usr/local/share/doc/mynet/README.md
	@echo "now: systemctl daemon-reload && systemctl enable --now mynet (or mynet.socket, to start it on first use)"

clean:
	rm -rf bin dist
