# Beacon's everyday commands. `make help` lists them.
#
#   make run     build and start everything in one process (no broker needed)
#   make test    every check CI runs: format, lints, unit, integration and browser tests, manifests
#   make up      deploy to a local minikube cluster and open the page
#   make bench   fan-out benchmark (SSE/WebSocket clients, latency, memory); see BENCHMARKS.md

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# cargo-nextest runs each test in its own process; plain `cargo test` works too.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)
TEST_RUNNER := $(if $(NEXTEST),$(CARGO) nextest run --workspace,$(CARGO) test --workspace)

.PHONY: help
help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Start Beacon (broadcaster + receiver, in-process bus) at http://127.0.0.1:8080/
	$(CARGO) run --release

.PHONY: test
test: fmt-check lint test-rust ## Run every check CI runs

.PHONY: fmt-check
fmt-check: ## Check formatting
	$(CARGO) fmt --all -- --check

.PHONY: lint
lint: ## Clippy, warnings as errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: test-rust
test-rust: ## Unit and integration tests (starts its own nats-server)
	$(TEST_RUNNER)

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

# Fan-out benchmark settings (see BENCHMARKS.md).
BENCH_CLIENTS ?= 1000
BENCH_RECEIVERS ?= 1
BENCH_RATE ?= 10
BENCH_SECONDS ?= 10
BENCH_TRANSPORT ?= sse
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: bench
bench: ## Fan-out benchmark: BENCH_CLIENTS clients on BENCH_RECEIVERS receivers at BENCH_RATE msg/s; adds a row to BENCHMARKS.md
	$(CARGO) build --release -p beacon -p beacon-loadgen
	BENCH_CLIENTS=$(BENCH_CLIENTS) BENCH_RECEIVERS=$(BENCH_RECEIVERS) BENCH_RATE=$(BENCH_RATE) \
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_TRANSPORT=$(BENCH_TRANSPORT) \
	$(TARGET_DIR)/release/beacon-loadgen
