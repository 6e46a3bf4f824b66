# gonydus: a pure-Go Nydus (RAFS v6) toolchain. `make help` lists targets.
GO        ?= go
BIN       ?= $(CURDIR)/bin
PREFIX    ?= /usr/local
FUZZTIME  ?= 20s
BENCHTIME ?= 1x
PKGS      ?= ./...
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
CMDS      := $(filter-out internal,$(notdir $(wildcard cmd/*)))
# The dependency step each of test, demo, e2e and bench runs first: as root it
# apt-get installs what is missing; otherwise it says what is missing and how
# to get it. `make test DEPS=:` skips it.
DEPS      ?= bash scripts/deps.sh
# golangci-lint: `scripts/deps.sh lint` installs this version into LINTBIN
# when neither LINTBIN, $(GO) env GOPATH/bin nor PATH has it; make lint looks
# in the same places in the same order.
GOLANGCI_LINT_VERSION ?= v2.15.0
LINTBIN   ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/gonydus/bin
LINTPATH   = $(LINTBIN):$(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: help deps build test e2e bench soak soak-failover fuzz lint demo install clean

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

deps: ## install (as root) or name (otherwise) the Debian packages the tests and scripts use
	$(DEPS) all

build: ## build every command into ./bin (static binaries)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test: ## run all tests (root tests mount EROFS/FUSE/overlay for real)
	$(DEPS) test
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 20m $(PKGS)

# The Docker suite runs in each container-layer mode (docs/testing.md):
# kernel runs every step (its modes step compares kernel, auto and
# userspace); userspace, and auto on a bindfs home that kernel overlayfs
# refuses, run every step that mounts a container root.
e2e: build ## end-to-end suites against real daemons (scripts/e2e.sh, e2e-converter.sh, e2e-docker.sh in each container-layer mode and in a user namespace, e2e-buildkit.sh, e2e-containerd.sh)
	$(DEPS) e2e
	GO=$(GO) BIN=$(BIN) bash scripts/e2e.sh
	GO=$(GO) BIN=$(BIN) bash scripts/e2e-converter.sh
	GO=$(GO) BIN=$(BIN) E2E_CONTAINER_LAYER=kernel bash scripts/e2e-docker.sh
	GO=$(GO) BIN=$(BIN) E2E_CONTAINER_LAYER=userspace E2E_DOCKER_STEPS="main failover" bash scripts/e2e-docker.sh
	GO=$(GO) BIN=$(BIN) E2E_CONTAINER_LAYER=auto E2E_PLUGIN_HOME=bindfs E2E_DOCKER_STEPS="main failover" bash scripts/e2e-docker.sh
	GO=$(GO) BIN=$(BIN) E2E_USERNS=1 E2E_CONTAINER_LAYER=auto E2E_PLUGIN_HOME=bindfs E2E_DOCKER_STEPS="main failover" bash scripts/e2e-docker.sh
	GO=$(GO) BIN=$(BIN) E2E_USERNS=1 E2E_CONTAINER_LAYER=auto E2E_DOCKER_STEPS="modes" bash scripts/e2e-docker.sh
	bash scripts/e2e-buildkit.sh
	GO=$(GO) BIN=$(BIN) bash scripts/e2e-containerd.sh

bench: build ## benchmarks; each prints a ratio against a baseline run in the same process
	$(DEPS) bench
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m $(PKGS)
	bash scripts/bench-docker.sh
	bash scripts/bench-buildkit.sh
	GO=$(GO) BIN=$(BIN) bash scripts/bench-containerd.sh

SOAK_ROUNDS ?= 10000
soak: ## stranded-request stress: SOAK_ROUNDS rounds of mount, load, and a random way to stop serving, over FUSE io_uring and over DevLoop (root; enable_uring for the rings)
	FUSEURING_STRESS_ROUNDS=$(SOAK_ROUNDS) $(GO) test -count=1 -timeout 6h -run '^TestStress(DevLoop)?NoStrandedRequest$$' -v ./internal/fuseuring/

soak-failover: ## nydusd failover: 100 SIGKILLs while 4 readers verify a 1.1 GiB registry image, read-only and over the writable overlay with a writer (root; GONYDUS_SOAK_KILLS, GONYDUS_SOAK_MB)
	GONYDUS_SOAK=1 $(GO) test -count=1 -timeout 3h -run '^TestFailoverSoak(Writable)?$$' -v ./cmd/nydusd/

fuzz: ## run every fuzz target for FUZZTIME each
	bash scripts/fuzz.sh $(FUZZTIME)

lint: ## golangci-lint (.golangci.yml), gofmt, go vet, go mod tidy -diff and the dependency-direction test
	GOLANGCI_LINT_VERSION=$(GOLANGCI_LINT_VERSION) LINTBIN=$(LINTBIN) $(DEPS) lint
	PATH="$(LINTPATH)" golangci-lint run $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff
	$(GO) test -count=1 -run TestDependencyDirection .

demo: build ## an image of Go's toolchain (or DIR=...) in a loopback registry, converted and started lazily by nydusd: bytes and time against a full pull; then a kernel EROFS export
	$(DEPS) demo
	GO=$(GO) BIN=$(BIN) bash scripts/demo.sh $(DIR)

install: build ## install commands into $(PREFIX)/bin (nydus-overlayfs must be on /bin/sh's default PATH)
	install -d $(DESTDIR)$(PREFIX)/bin
	for c in $(CMDS); do install -m 0755 $(BIN)/$$c $(DESTDIR)$(PREFIX)/bin/$$c; done

clean: ## remove build outputs
	rm -rf $(BIN)
