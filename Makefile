# provgate — make help lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/provgate/provgate/internal/buildinfo.Version=$(VERSION)
BINS := provgate provgate-origin provgate-bench

.PHONY: help build test test-short lint demo demo-up demo-down bench bench-quick fuzz clean

help: ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/provgate and bin/provgate-origin
	@mkdir -p bin
	@for b in $(BINS); do [ -f cmd/$$b/main.go ] || continue; $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/$$b ./cmd/$$b || exit 1; done

test: ## run every test with the race detector (root-only tests skip otherwise)
	$(GO) test -race -count=1 -timeout 15m ./...

test-short: ## quick tests: skips the slow ones
	$(GO) test -short -count=1 ./...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

demo: build ## run the product on loopback: reference cloud, gateway, real clients
	@scripts/demo.sh

demo-up: build ## start the demo's cloud and gateway and leave them running
	@scripts/demo.sh up

demo-down: ## stop what demo-up started
	@scripts/demo.sh down

bench: build ## P1-P7: provgate vs tftpd-hpa, atftpd, dnsmasq and nginx, side by side (as root); then the Go benchmarks
	scripts/bench-peers.sh
	bin/provgate-bench --bin bin --peers .bench/peers
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-quick: build ## the same workloads, small: checks the harness in a minute
	scripts/bench-peers.sh
	bin/provgate-bench --bin bin --peers .bench/peers --quick

fuzz: ## run each fuzz target for a short while (FUZZTIME=30s)
	@for pkg in $$($(GO) list ./...); do for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
		echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-30s} $$pkg || exit 1; done; done

clean: ## remove build output and demo state
	rm -rf bin dist .demo .bench
