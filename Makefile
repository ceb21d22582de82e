# Gatehouse — run `make help` for the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

# Tools, pinned. They install into ./.bin on first use.
BUF_VERSION          := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
SQLC_VERSION         := v1.31.1
TEMPL_VERSION        := v0.3.977
STATICCHECK_VERSION  := v0.8.2

BIN     := $(CURDIR)/.bin
MODULES := proto migrations web controlplane dataplane e2e
# Every package of every workspace module (`go test ./...` does not work at a go.work root).
PKGS    := $(addprefix ./,$(addsuffix /...,$(MODULES)))
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOTEST_FLAGS ?= -count=1 -timeout 15m
DB_ENV  := set -a; source .dev/db.env; set +a

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: dev
dev: db-up build ## Run everything locally: Postgres, control plane + embedded NATS, a gateway, the demo upstream; Ctrl-C stops it all.
	@$(DB_ENV); ./bin/devstack

.PHONY: test
test: db-up chromium-up ## Run every test against a real Postgres, embedded NATS and headless Chromium.
	@$(DB_ENV); go test $(GOTEST_FLAGS) $(PKGS)

.PHONY: chromium-up
chromium-up: ## Make sure headless Chromium is installed for the console tests (installs the Debian package when missing).
	@./scripts/chromium-up.sh

.PHONY: e2e
e2e: db-up chromium-up ## Run the end-to-end tests only (real binaries, real SDK clients).
	@$(DB_ENV); go test $(GOTEST_FLAGS) -v ./e2e/...

.PHONY: bench
bench: db-up ## Run the benchmarks.
	@$(DB_ENV); go test -run '^$$' -bench . -benchmem -count=1 $(PKGS)
	@./scripts/bench.sh

.PHONY: build
build: ## Build the binaries into ./bin.
	@mkdir -p bin
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/controlplane ./controlplane/cmd/controlplane
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/gateway ./dataplane/cmd/gateway
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/demo-upstream ./e2e/cmd/demo-upstream
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/devstack ./e2e/cmd/devstack
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/dev-idp ./e2e/cmd/dev-idp

.PHONY: db-up
db-up: ## Make sure a PostgreSQL server answers (start or install one when none does).
	@./scripts/db-up.sh

.PHONY: tools
tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/sqlc $(BIN)/templ ## Install the pinned code generators into ./.bin.

$(BIN)/buf:
	GOBIN=$(BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/sqlc:
	GOBIN=$(BIN) go install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)
$(BIN)/templ:
	GOBIN=$(BIN) go install github.com/a-h/templ/cmd/templ@$(TEMPL_VERSION)
$(BIN)/staticcheck:
	GOBIN=$(BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: generate
generate: tools ## Regenerate protobuf (buf), SQL (sqlc) and views (templ).
	cd proto && $(BIN)/buf generate
	cd controlplane && $(BIN)/sqlc generate
	cd web && $(BIN)/templ generate -log-level error

.PHONY: verify
verify: generate ## Regenerate and fail if the committed generated code drifted; lint the protos.
	cd proto && $(BIN)/buf lint
	@if [ -n "$$(git status --porcelain -- proto controlplane/internal/store/dbq web)" ]; then \
	  echo "generated code is out of date; run make generate and commit:"; \
	  git status --porcelain -- proto controlplane/internal/store/dbq web; exit 1; fi
	@echo "generated code is current"

.PHONY: lint
lint: $(BIN)/staticcheck ## go vet, staticcheck and gofmt over every module.
	go vet $(PKGS)
	$(BIN)/staticcheck $(PKGS)
	@test -z "$$(gofmt -l $(MODULES))" || { gofmt -l $(MODULES); exit 1; }

.PHONY: clean
clean: ## Remove build output (not .dev, which holds local data).
	rm -rf bin
