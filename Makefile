# The everyday commands of both apps. `make help` lists them all.
#
#   make run           Beacon, everything in one process (no broker needed); UdaConnect: cargo run --release -p udaconnect
#   make test          every check CI runs: prerequisites, the README's quick start, format, lints, manifests,
#                      unit, integration and browser tests, small chaos and benchmark runs
#   make e2e           the browser tests alone: both pages in headless Chromium, screenshots in target/e2e/
#   make up            deploy both apps to a local minikube cluster and open their pages
#   make bench-fanout  Beacon's fan-out benchmark; bench-ingest, bench-queries and bench-api-memory are UdaConnect's (BENCHMARKS.md)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# cargo-nextest runs each test in its own process; plain `cargo test` works too.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)
TEST_RUNNER := $(if $(NEXTEST),$(CARGO) nextest run --workspace,$(CARGO) test --workspace)
# The browser tests: modules `browser` (and UdaConnect's `browser_access`)
# of the integration tests.
E2E_RUNNER := $(if $(NEXTEST),$(CARGO) nextest run -p beacon -p udaconnect --test api -E 'test(/^browser(_access)?::/)',$(CARGO) test -p beacon --test api -- browser:: && $(CARGO) test -p udaconnect --test api -- browser)
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

# `make chaos-beacon` defaults: the full run. Override as make variables or env vars.
CHAOS_MESSAGES ?= 100000
CHAOS_BROKER_KILLS ?= 20
CHAOS_RECEIVER_RESTARTS ?= 20
CHAOS_CLIENT_RECONNECTS ?= 1000

.PHONY: help
help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Start Beacon (broadcaster + receiver, in-process bus) at http://127.0.0.1:8080/
	$(CARGO) run --release

.PHONY: test
test: test-prereqs check-quickstart fmt-check lint check-manifests test-rust chaos-beacon-smoke chaos-udaconnect-smoke bench-queries-smoke bench-meetings-smoke bench-volume-smoke ## Run every check CI runs

.PHONY: test-prereqs
test-prereqs: ## Say in one message what the tests need and this machine lacks, before compiling
	@scripts/test-prereqs.sh

.PHONY: check-quickstart
check-quickstart: ## Run the README's quick start commands as typed, cheaply (cargo must pick the binary)
	@scripts/check-quickstart.sh

.PHONY: fmt-check
fmt-check: ## Check formatting
	$(CARGO) fmt --all -- --check

.PHONY: lint
lint: ## Clippy, warnings as errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: test-rust
test-rust: ## Unit and integration tests (starts its own nats-server)
	$(TEST_RUNNER)

.PHONY: e2e
e2e: ## The browser tests alone, both apps' pages (needs chromium); screenshots in target/e2e/
	$(E2E_RUNNER)

.PHONY: screenshots
screenshots: ## The README's pictures (docs/beacon.png, docs/udaconnect.png), as a user sees the pages after the quick start
	$(CARGO) build --release -p beacon -p udaconnect -p screenshots
	$(TARGET_DIR)/release/screenshots

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: chaos-beacon
chaos-beacon: ## Beacon's zero-loss proof under faults (CHAOS_MESSAGES, CHAOS_BROKER_KILLS, CHAOS_RECEIVER_RESTARTS, CHAOS_CLIENT_RECONNECTS)
	$(CARGO) build --release -p beacon -p beacon-chaos
	CHAOS_MESSAGES=$(CHAOS_MESSAGES) CHAOS_BROKER_KILLS=$(CHAOS_BROKER_KILLS) \
	CHAOS_RECEIVER_RESTARTS=$(CHAOS_RECEIVER_RESTARTS) CHAOS_CLIENT_RECONNECTS=$(CHAOS_CLIENT_RECONNECTS) \
	  $(TARGET_DIR)/release/beacon-chaos

.PHONY: chaos-beacon-smoke
chaos-beacon-smoke: ## A small Beacon chaos run, about a minute (part of make test)
	$(CARGO) build -p beacon -p beacon-chaos
	CHAOS_MESSAGES=20000 CHAOS_BROKER_KILLS=4 CHAOS_RECEIVER_RESTARTS=4 CHAOS_CLIENT_RECONNECTS=200 \
	  $(TARGET_DIR)/debug/beacon-chaos

# `make chaos-udaconnect` defaults: UdaConnect's ingest, the full run. Its
# broker kills default to 5 (`make chaos-beacon`'s CHAOS_BROKER_KILLS default is
# Beacon's); CHAOS_BROKER_KILLS given on the command line or in the
# environment wins.
CHAOS_LOCATIONS ?= 1000000
CHAOS_WRITER_KILLS ?= 10
CHAOS_DB_RESTARTS ?= 5
CHAOS_CONNECT_BROKER_KILLS ?= 5

.PHONY: chaos-udaconnect
chaos-udaconnect: ## UdaConnect ingest zero-loss proof (CHAOS_LOCATIONS, CHAOS_WRITER_KILLS, CHAOS_BROKER_KILLS, CHAOS_DB_RESTARTS)
	$(CARGO) build --release -p udaconnect -p udaconnect-chaos
	CHAOS_LOCATIONS=$(CHAOS_LOCATIONS) CHAOS_WRITER_KILLS=$(CHAOS_WRITER_KILLS) \
	CHAOS_BROKER_KILLS=$(if $(filter command line environment,$(origin CHAOS_BROKER_KILLS)),$(CHAOS_BROKER_KILLS),$(CHAOS_CONNECT_BROKER_KILLS)) \
	CHAOS_DB_RESTARTS=$(CHAOS_DB_RESTARTS) \
	  $(TARGET_DIR)/release/udaconnect-chaos

.PHONY: chaos-udaconnect-smoke
chaos-udaconnect-smoke: ## A small UdaConnect ingest chaos run, about a minute (part of make test)
	$(CARGO) build -p udaconnect -p udaconnect-chaos
	CHAOS_LOCATIONS=50000 CHAOS_WRITER_KILLS=3 CHAOS_BROKER_KILLS=2 CHAOS_DB_RESTARTS=2 \
	  $(TARGET_DIR)/debug/udaconnect-chaos

.PHONY: bench-ingest
bench-ingest: ## UdaConnect ingest benchmark (BENCH_SECONDS, BENCH_TRANSPORT=grpc|http, BENCH_API_REPLICA=true|false, BENCH_MEETINGS meetings processes, 1; BENCH_KEYS=true|false: idempotency keys); adds a row to BENCHMARKS.md
	$(CARGO) build --release -p udaconnect -p udaconnect-ingest-bench
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_TRANSPORT=$(if $(filter sse ws,$(BENCH_TRANSPORT)),grpc,$(BENCH_TRANSPORT)) \
	  BENCH_API_REPLICA=$(BENCH_API_REPLICA) \
	  $(TARGET_DIR)/release/udaconnect-ingest-bench

.PHONY: bench-meetings
bench-meetings: ## How soon a meeting shows (API live stream and bus) after the edge took its location, under BENCH_RATE locations/s for BENCH_SECONDS, with BENCH_MEETINGS meetings processes (BENCH_MEETINGS_ENV=NAME=value,…: their settings; BENCH_UDACONNECT=<binary>, BENCH_LABEL: measure another build); adds a row to BENCHMARKS.md
	$(CARGO) build --release -p udaconnect -p udaconnect-ingest-bench
	BENCH_RATE=$(or $(BENCH_RATE),10000) BENCH_SECONDS=$(BENCH_SECONDS) \
	  $(TARGET_DIR)/release/meetings-freshness

.PHONY: bench-meetings-smoke
bench-meetings-smoke: ## A small meetings freshness run on the debug build, about half a minute; checks that meetings show, writes nothing (part of make test)
	$(CARGO) build -p udaconnect -p udaconnect-ingest-bench
	BENCH_RATE=200 BENCH_SECONDS=5 BENCH_OUTPUT=- $(TARGET_DIR)/debug/meetings-freshness

.PHONY: bench-edge-memory
bench-edge-memory: ## What one hostile request costs an ingest edge in memory (BENCH_UDACONNECT=<binary>, BENCH_LABEL: measure another build); adds rows to BENCHMARKS.md
	$(CARGO) build --release -p udaconnect -p udaconnect-ingest-bench
	$(TARGET_DIR)/release/edge-memory

# `make bench-queries` defaults: 1,000 persons, 1,000,000 locations, 20
# persons asked about, the original's month replayed for 3 of them, 30 s
# at most per person's replay (see BENCHMARKS.md).
BENCH_PERSONS ?= 1000
BENCH_LOCATIONS ?= 1000000
BENCH_SAMPLE ?= 20
BENCH_ORIGINAL_MONTH ?= 3
BENCH_ORIGINAL_BUDGET ?= 30

.PHONY: bench-queries
bench-queries: ## UdaConnect connections query benchmark (BENCH_PERSONS, BENCH_LOCATIONS, BENCH_SAMPLE, BENCH_ORIGINAL_MONTH, BENCH_ORIGINAL_BUDGET); adds rows to BENCHMARKS.md
	$(CARGO) build --release -p udaconnect -p udaconnect-query-bench
	BENCH_PERSONS=$(BENCH_PERSONS) BENCH_LOCATIONS=$(BENCH_LOCATIONS) BENCH_SAMPLE=$(BENCH_SAMPLE) \
	BENCH_ORIGINAL_MONTH=$(BENCH_ORIGINAL_MONTH) BENCH_ORIGINAL_BUDGET=$(BENCH_ORIGINAL_BUDGET) \
	  $(TARGET_DIR)/release/udaconnect-query-bench

.PHONY: bench-answer-memory
bench-answer-memory: ## What one large answer of the original's endpoint costs the API in memory (BENCH_UDACONNECT=<binary>, BENCH_LABEL); adds rows to BENCHMARKS.md
	$(CARGO) build --release -p udaconnect -p udaconnect-query-bench
	$(TARGET_DIR)/release/answer-memory

# `make bench-api-memory` defaults (with BENCH_LOCATIONS, BENCH_PERSONS and
# BENCH_SAMPLE above): the API in SQL and with its replica, each started
# afresh twice, alternating.
BENCH_ROUNDS ?= 2
BENCH_MODES ?= sql,replica

.PHONY: bench-api-memory
bench-api-memory: ## The API's memory and connection latencies at BENCH_LOCATIONS stored (BENCH_PERSONS, BENCH_SAMPLE, BENCH_ROUNDS, BENCH_MODES=sql,replica); adds rows to BENCHMARKS.md
	$(CARGO) build --release -p udaconnect -p udaconnect-query-bench
	BENCH_PERSONS=$(BENCH_PERSONS) BENCH_LOCATIONS=$(BENCH_LOCATIONS) BENCH_SAMPLE=$(BENCH_SAMPLE) \
	BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_MODES=$(BENCH_MODES) \
	  $(TARGET_DIR)/release/api-memory

# `make bench-volume` defaults: the history at 1 M, 10 M and 50 M locations
# of a three-day conference of 1,000 attendees (see BENCHMARKS.md).
BENCH_STEPS ?= 1000000,10000000,50000000

.PHONY: bench-volume
bench-volume: ## UdaConnect at a conference's volume, at each size of BENCH_STEPS: the meetings backfilled, every target's peak memory, the meetings and connections questions (BENCH_PERSONS, BENCH_SAMPLE, BENCH_BACKFILL_UP_TO, BENCH_REFERENCE_UP_TO; BENCH_DATABASE_URL: a database loaded before as a step loads it); adds rows to BENCHMARKS.md
	$(CARGO) build --release -p udaconnect -p udaconnect-query-bench
	BENCH_STEPS=$(BENCH_STEPS) BENCH_PERSONS=$(BENCH_PERSONS) BENCH_SAMPLE=$(BENCH_SAMPLE) \
	  $(TARGET_DIR)/release/volume

.PHONY: bench-volume-smoke
bench-volume-smoke: ## A small volume run on the debug build, under a minute; checks the meetings against the reference, writes nothing (part of make test)
	$(CARGO) build -p udaconnect -p udaconnect-query-bench
	BENCH_STEPS=5000,15000 BENCH_PERSONS=50 BENCH_SAMPLE=3 BENCH_FEED=500 BENCH_OUTPUT=- \
	  $(TARGET_DIR)/debug/volume

.PHONY: bench-queries-smoke
bench-queries-smoke: ## A small connections query benchmark, well under a minute; checks the answers, writes nothing (part of make test)
	$(CARGO) build -p udaconnect -p udaconnect-query-bench
	BENCH_PERSONS=50 BENCH_LOCATIONS=20000 BENCH_SAMPLE=3 BENCH_ORIGINAL_MONTH=1 BENCH_ORIGINAL_BUDGET=30 BENCH_RECORD=0 \
	  $(TARGET_DIR)/debug/udaconnect-query-bench

# Fan-out benchmark settings (see BENCHMARKS.md).
BENCH_CLIENTS ?= 1000
BENCH_RECEIVERS ?= 1
BENCH_RATE ?= 10
BENCH_SECONDS ?= 10
BENCH_API_REPLICA ?= true
BENCH_TRANSPORT ?= sse

.PHONY: bench-fanout
bench-fanout: ## Beacon's fan-out benchmark: BENCH_CLIENTS clients on BENCH_RECEIVERS receivers at BENCH_RATE msg/s; adds a row to BENCHMARKS.md
	$(CARGO) build --release -p beacon -p beacon-fanout-bench
	BENCH_CLIENTS=$(BENCH_CLIENTS) BENCH_RECEIVERS=$(BENCH_RECEIVERS) BENCH_RATE=$(BENCH_RATE) \
	BENCH_SECONDS=$(BENCH_SECONDS) BENCH_TRANSPORT=$(BENCH_TRANSPORT) \
	$(TARGET_DIR)/release/beacon-fanout-bench

# Resume-storm settings (see BENCHMARKS.md).
STORM_CLIENTS ?= 1000
STORM_MESSAGES ?= 20000

.PHONY: bench-resume
bench-resume: ## STORM_CLIENTS SSE clients resume from seq 1 of a STORM_MESSAGES-message stream at once; time and peak consumers
	$(CARGO) build --release -p beacon -p beacon-fanout-bench --bin beacon --bin resume-storm
	STORM_CLIENTS=$(STORM_CLIENTS) STORM_MESSAGES=$(STORM_MESSAGES) $(TARGET_DIR)/release/resume-storm

.PHONY: bench-floor
bench-floor: ## This machine's lower bound for fan-out latency: raw loopback sockets, no HTTP, no broker
	$(CARGO) build --release -p beacon-fanout-bench --bin loopback-floor
	$(TARGET_DIR)/release/loopback-floor $(BENCH_CLIENTS)

include deploy/minikube.mk
