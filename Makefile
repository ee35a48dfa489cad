# readymesh — see README.md. Every target works on a fresh Debian machine
# with Go: what the tests need beyond Go is installed by `make deps`.

GO        ?= go
BIN       := $(CURDIR)/bin
TOOLS     := $(CURDIR)/.tools
BINARIES  := ./broker/cmd/broker ./sessiond/cmd/sessiond ./peer/cmd/meshctl
STATICCHECK_VERSION := v0.8.2
BENCHSTAT_VERSION   := v0.0.0-20260908200009-22c9c6c9d4da
# The commit every binary reports in its version command: the Go
# toolchain's own VCS stamp is off where GOFLAGS has -buildvcs=false.
COMMIT    := $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +modified)
LDFLAGS   := -X github.com/readymesh/readymesh/peer/buildinfo.Commit=$(COMMIT)
BENCH_COUNT ?= 5
FUZZTIME    ?= 10s
TEST_TIMEOUT ?= 15m

# The platforms sessiond and meshctl are built for besides linux/amd64,
# which make build and the tests build and vet already; the broker builds
# on all of them too (production remains Linux). Each costs a compile of
# every dependency for that platform: about a minute and a half of the
# two cores when the build cache is cold.
PLATFORMS := linux/arm64 windows/amd64 windows/arm64 darwin/amd64 darwin/arm64
# Packages with code of their own per platform: vetted for every platform.
PLATFORM_PKGS := ./sessiond/... ./peer/... ./mesh/... ./broker/cmd/... ./integration/demo
# Packages whose Windows code runs under Wine in make test.
WINE_PKGS := ./sessiond/channel ./sessiond/collect ./sessiond/netwatch ./sessiond/ipc ./sessiond/service ./sessiond/sysevents ./sessiond/update ./sessiond/cli ./sessiond/internal/wintest ./peer/identity ./peer/meshctl

.PHONY: all build console test demo bench lint fuzz deps race clean cross wine-test

all: build

# console bundles the web console (broker/console/web: xterm.js from npm,
# bundled by esbuild's Go API) into broker/console/dist, which the broker
# embeds. It runs npm ci first when node_modules is missing or stale.
console:
	$(GO) run ./broker/console/build

build: console
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(BINARIES)

# deps installs the system packages the tests use (iproute2 for the
# network-namespace tests, nftables for the NAT lab, chromium for the web
# console's browser tests, npm for the console's build, Wine and mingw for
# the Windows agent's tests, dbus-daemon for the agent's system-bus tests)
# when they are
# missing and this is a Debian machine where we are root. Elsewhere it says what
# is missing; the tests that need them skip with a reason (or fail under
# READYMESH_REQUIRE_NETNS=1).
deps:
	@missing=""; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	command -v wine >/dev/null 2>&1 || command -v wine-stable >/dev/null 2>&1 || missing="$$missing wine wine64"; \
	command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || missing="$$missing gcc-mingw-w64-x86-64"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v dbus-daemon >/dev/null 2>&1 || missing="$$missing dbus-daemon"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "note: missing$$missing (install them to run the network-namespace tests)"; \
		fi; \
	fi

# Tests save what they want kept (the browser tests' screenshots) under
# bin/test-output/_artifacts.
test: deps build cross wine-test
	@mkdir -p $(BIN)/test-output
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -artifacts -outputdir $(BIN)/test-output ./...

# cross builds the three binaries and vets the per-platform packages for
# every platform in PLATFORMS.
cross:
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; echo "== $$os/$$arch"; \
		GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) build -o $(BIN)/cross/$$os-$$arch/ $(BINARIES); \
		GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) vet $(PLATFORM_PKGS); \
	done

# wine-test runs the Windows code's tests for real, as Windows programs
# under Wine (integration/internal/wine: a Windows 10 prefix with the
# ProcessPrng shim Go needs, made on first use).
# Without Wine it skips and says so, unless READYMESH_REQUIRE_NETNS=1 (CI),
# where nothing may be skipped.
wine-test:
	@if ! command -v wine >/dev/null 2>&1 && ! command -v wine-stable >/dev/null 2>&1 && [ ! -x /usr/lib/wine/wine64 ]; then \
		if [ "$$READYMESH_REQUIRE_NETNS" = 1 ]; then echo "wine-test: Wine is not installed (READYMESH_REQUIRE_NETNS=1)"; exit 1; fi; \
		echo "wine-test: skipping: Wine is not installed (make deps installs it on Debian as root)"; exit 0; \
	fi
	$(GO) build -o $(BIN)/wineexec ./integration/internal/wine/cmd/wineexec
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) test -count=1 -exec $(BIN)/wineexec $(WINE_PKGS)

race: deps build
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

demo: build
	$(GO) build -o $(BIN)/demo ./integration/demo
	@$(BIN)/demo -bin $(BIN) -dir $(CURDIR)/.demo -fixtures $(CURDIR)/integration/demo/fixtures

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(TOOLS)/benchstat:
	GOBIN=$(TOOLS) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

lint: $(TOOLS)/staticcheck
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...

# bench runs every benchmark BENCH_COUNT times into bin/bench.txt and
# summarises it with benchstat. Each benchmark family has a baseline
# measured in the same run (see README, "Benchmarks"). One package at a
# time (-p 1): benchmarks of two packages sharing the two cores would
# measure each other.
bench: $(TOOLS)/benchstat deps build
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -timeout 120m ./... | tee $(BIN)/bench.txt
	$(TOOLS)/benchstat $(BIN)/bench.txt
	@# go test exits 0 when a benchmark fails on a -count run after the first.
	@! grep -E '^(--- )?FAIL' $(BIN)/bench.txt

# fuzz runs every fuzz target for FUZZTIME.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg; \
		done; \
	done

clean:
	rm -rf $(BIN) .demo
