# mynet — see README.md. Every target runs as root on a Debian host.
GO          ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOBIN       ?= $(shell $(GO) env GOPATH)/bin
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
FUZZTIME    ?= 5s
# Packages that need no dockerd (unit tests, and kernel integration tests in
# private network namespaces).
PKGS        = $(shell $(GO) list ./... | grep -v /test/e2e)

export PATH := $(dir $(GO)):$(GOBIN):$(PATH)

.PHONY: all build run test deps lint unit fuzz e2e test-unit clean

all: build

build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/mynet .

# Build and run the daemon in the foreground on Docker's plugin directory.
# Stop it with Ctrl-C (networks and containers keep working meanwhile).
run: build
	./bin/mynet $(ARGS)

# The whole suite: host setup, lint, unit + kernel integration tests,
# short fuzzing, and the end-to-end tests through a real dockerd.
test: deps lint unit fuzz e2e

# Installs docker.io, iptables and busybox-static when missing, starts dockerd
# when it is not running, and builds the local busybox test image.
deps:
	bash test/e2e/setup.sh

lint: $(STATICCHECK)
	@out=$$(gofmt -l .) && test -z "$$out" || { echo "gofmt needed (or failed):"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

unit:
	$(GO) test -race -count=1 $(PKGS)

# Pure-logic tests only: no root, no kernel (for a quick loop as a user).
test-unit:
	$(GO) test -race -count=1 ./errdefs ./store ./ipam ./driver ./plugin .

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseNetworkConfig -fuzztime $(FUZZTIME) ./driver
	$(GO) test -run '^$$' -fuzz FuzzParsePortMap -fuzztime $(FUZZTIME) ./driver
	$(GO) test -run '^$$' -fuzz FuzzDecodeRequests -fuzztime $(FUZZTIME) ./plugin

e2e: deps
	$(GO) test -count=1 -v -timeout 20m ./test/e2e

clean:
	rm -rf bin
