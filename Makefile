# vscardkit: the targets users and CI run. `make help` lists them.

GO        ?= go
BIN       := bin
FUZZTIME  ?= 5m
BENCHCOUNT ?= 6
# make test turns a missing peer (QEMU, pcscd, softhsm2, libvirtd...) from a
# skip into a failure.
TESTENV   := VSCARDKIT_REQUIRE_PEERS=1
TESTFLAGS ?=
# staticcheck at a pinned version, fetched by the go command (nothing is
# added to go.mod).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The version the commands print with --version (scripts/version.sh: git
# describe, or v0.0.0-DATE-HASH before the first tag).
VERSION   ?= $(shell scripts/version.sh)
LDFLAGS   := -X github.com/vscardkit/vscardkit/internal/cli.version=$(VERSION)
DIST      ?= dist

.PHONY: help deps build-deps build dist demo demo-vm test bench soak fuzz vet lint tidy-check deb clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

deps: ## install the Debian packages the build and tests need (root; idempotent)
	@scripts/install-deps.sh

build-deps: ## install just what make build needs: gcc, pkg-config, libpcsclite-dev (root; idempotent)
	@scripts/install-deps.sh --build

build: ## build the commands into bin/, stamped with VERSION (needs gcc, pkg-config, libpcsclite-dev)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

dist: ## vscclient-go for linux/amd64, linux/arm64, windows/amd64 and darwin/arm64 into dist/ (DIST=dir), with SHA256SUMS (installs cross compilers when missing)
	VERSION=$(VERSION) GO=$(GO) scripts/dist.sh $(DIST)

demo: deps build ## the main job, in a few seconds: a fake QEMU, vscclient-go --card soft, a guest script that signs
	$(GO) run ./internal/cmd/demo --bin $(BIN)

demo-vm: deps build ## a real Linux guest under QEMU uses vscclient-go's soft card: reader, ATR, PIV objects, a signature verified on the host
	$(GO) run ./internal/cmd/demo-vm --bin $(BIN)

vet: ## go vet, and gofmt must have nothing to say
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

lint: ## staticcheck (pinned)
	$(GO) run $(STATICCHECK) ./...

tidy-check: ## go.mod and go.sum are as go mod tidy leaves them
	$(GO) mod tidy -diff

test: deps vet lint tidy-check ## every test with the race detector, integration tests against the real peers included
	$(TESTENV) $(GO) test -race -count=1 -timeout 14m $(TESTFLAGS) ./...

bench: deps ## run the benchmarks (BENCHCOUNT runs each; compare with benchstat)
	$(TESTENV) $(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) -timeout 60m ./...

soak: deps ## 1,000,000 APDUs and 1,000 host reconnects through vscclient-go --card soft: RSS and goroutines flat
	$(TESTENV) VSCARDKIT_SOAK=$${SOAK_APDUS:-1000000} $(GO) test -count=1 -timeout 60m -run '^TestSoak$$' -v ./cmd/vscclient-go

fuzz: ## run every fuzz target for FUZZTIME each (default 5m)
	@scripts/fuzz.sh $(FUZZTIME)

deb: ## build dist/vscardkit_VERSION_amd64.deb (DIST=dir): the commands, systemd units, man pages, completion
	VERSION=$(VERSION) GO=$(GO) scripts/mkdeb.sh $(DIST)

clean: ## remove build output
	rm -rf $(BIN) $(DIST)
