# Sluice developer entry points.
#
#   make test      start the test servers (scripts/testenv up), run go vet and the race-enabled
#                  test suite against them, stop the servers again (always, pass or fail) and
#                  exit with the tests' status.
#                  TESTENV_ARGS is passed to `scripts/testenv up` (e.g. --brokers 3),
#                  GOTEST_FLAGS to `go test` (e.g. -run TestX -v), PKGS picks the packages.
#                  With neither set, the tests that stop a shared server ($(OUTAGE_TESTS))
#                  and the end-to-end pipeline tests (./e2e) run on their own after the
#                  rest, and a last phase restarts Kafka with three brokers and runs
#                  the broker failure tests ($(BROKER_TESTS)) against it, then a shortened
#                  run of the chaos suite ($(CHAOS_SHORT_DURATION) at $(CHAOS_SHORT_RATE) frames/s).
#   make chaos     the chaos suite (./chaos, issue item 17) in full on fresh test servers with
#                  three Kafka brokers: three workers, mqtt-source -> timescale-, mongodb- and
#                  iceberg-sink for CHAOS_DURATION (5m) at CHAOS_RATE (2000) frames/s over MQTT
#                  QoS 1, a worker SIGKILLed and restarted every CHAOS_KILL_EVERY (20s), a broker,
#                  PostgreSQL and MongoDB each restarted once; an independent checker then counts
#                  every frame sent in each store (BENCH chaos lines; lost and duplicated must be
#                  0). The sent frames, worker logs and any losses are kept in CHAOS_OUT_DIR.
#   make bench     throughput against the raw Kafka clients and against Apache Kafka Connect
#                  (its jars fetched by scripts/testenv connect), idle memory, the REST
#                  latency TLS and authentication add, and publish-to-visible latency at
#                  2,000 frames/s over MQTT into MongoDB and TimescaleDB
#   make screenshots
#                  the web console's browser tests, writing the screenshots of its main views
#                  into docs/console (commit them when they change)
#   make build     bin/sluice
#   make dev       run Sluice's single-process dev mode
#   make testenv-up / testenv-down / testenv-status
#                  manage the test servers by hand; then `source .testenv/env` and `go test`.

SHELL := /bin/bash
GO ?= go
TESTENV := scripts/testenv
TESTENV_ARGS ?=
GOTEST_FLAGS ?=
PKGS ?= ./...
# golangci-lint, at the version tools/go.mod pins (built once, then cached by Go).
LINT := $(GO) tool -modfile=tools/go.mod golangci-lint
# The tests that need three brokers; make test runs them in a second phase.
BROKER_TESTS ?= ^TestBroker
# Tests that stop a server every package shares (PostgreSQL, MongoDB, InfluxDB) for tens of
# seconds: they run on their own, one package at a time, after the main run, which skips them.
OUTAGE_TESTS ?= ^(TestDatabaseStoppedUnderLoad|TestServerStoppedUnderLoad|TestServerStoppedUnderLoadLosesNothing)$$
OUTAGE_PKGS := ./connectors/timescale-sink/ ./connectors/mongodb-sink/ ./connectors/influxdb-sink/
# The chaos suite: the full run of make chaos, and the shortened one at the end of make test.
CHAOS_DURATION ?= 5m
CHAOS_RATE ?= 2000
CHAOS_KILL_EVERY ?= 20s
CHAOS_SHORT_DURATION ?= 75s
CHAOS_SHORT_RATE ?= 1000
CHAOS_OUT_DIR ?= $(CURDIR)/.testenv/chaos

.PHONY: all test lint chaos bench screenshots vet build dev testenv-up testenv-down testenv-status clean

all: build

# One shell for the whole recipe, so the EXIT trap stops the servers whatever happens
# (failing tests, failing `up`, Ctrl-C), and the exit status is the tests' own.
test:
	@set -uo pipefail; \
	trap '$(TESTENV) down' EXIT; \
	trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(TESTENV) up $(TESTENV_ARGS) || exit $$?; \
	source .testenv/env || exit $$?; \
	echo "go vet $(PKGS)"; \
	$(GO) vet $(PKGS) || exit $$?; \
	echo "golangci-lint run $(PKGS) (.golangci.yml)"; \
	$(LINT) run $(PKGS) || exit $$?; \
	full=; [[ -z "$(GOTEST_FLAGS)" && "$(PKGS)" == ./... ]] && full=1; \
	pkgs="$(PKGS)"; [[ -n "$$full" ]] && pkgs=$$($(GO) list ./... | grep -v '/e2e$$'); \
	skip=; [[ -n "$$full" ]] && skip='$(OUTAGE_TESTS)'; \
	echo "go test -race -count=1 -timeout 40m $(GOTEST_FLAGS) $(PKGS)$${skip:+ (skipping the outage tests)}"; \
	$(GO) test -race -count=1 -timeout 40m -skip "$$skip" $(GOTEST_FLAGS) $$pkgs || exit $$?; \
	[[ -n "$$full" ]] || exit 0; \
	echo "server outage tests (alone: each stops a server the other packages' tests use)"; \
	$(GO) test -race -count=1 -timeout 15m -p 1 -run '$(OUTAGE_TESTS)' -v $(OUTAGE_PKGS) | grep -E '^(=== RUN|---|ok|FAIL|panic|\s+\S+_test\.go)' || exit $$?; \
	echo "end-to-end pipeline tests (alone: other packages' tests stop and start the shared servers)"; \
	$(GO) test -race -count=1 -timeout 20m -v ./e2e/ | grep -E '^(=== RUN|---|ok|FAIL|panic|BENCH|\s+\S+_test\.go)' || exit $$?; \
	echo "broker failure tests: Kafka restarted with three brokers"; \
	$(TESTENV) up --brokers 3 --only kafka || exit $$?; \
	source .testenv/env || exit $$?; \
	$(GO) test -race -count=1 -timeout 15m -run '$(BROKER_TESTS)' -v ./cmd/sluice/ | grep -E '^(=== RUN|---|ok|FAIL|panic|\s+\S+_test\.go)' || exit $$?; \
	echo "chaos suite, shortened: $(CHAOS_SHORT_DURATION) at $(CHAOS_SHORT_RATE) frames/s (make chaos runs it in full)"; \
	SLUICE_CHAOS_DURATION=$(CHAOS_SHORT_DURATION) SLUICE_CHAOS_RATE=$(CHAOS_SHORT_RATE) SLUICE_CHAOS_KILL_EVERY=$(CHAOS_KILL_EVERY) \
	SLUICE_CHAOS_OUT_DIR=$(CHAOS_OUT_DIR) $(GO) test -race -count=1 -timeout 20m -run '^TestChaos$$' -v ./chaos/ | grep -E '^(=== RUN|---|ok|FAIL|panic|BENCH|\s+\S+_test\.go)'

# The chaos suite in full (see the top of this file). The workers are separate processes
# (never race-built); the test process, which runs the simulator, is left without -race here so
# that it can publish at the full rate.
chaos:
	@set -uo pipefail; \
	trap '$(TESTENV) down' EXIT; \
	trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(TESTENV) up --brokers 3 || exit $$?; \
	source .testenv/env || exit $$?; \
	echo "chaos suite: $(CHAOS_DURATION) at $(CHAOS_RATE) frames/s, a worker killed every $(CHAOS_KILL_EVERY); output in $(CHAOS_OUT_DIR)"; \
	SLUICE_CHAOS_DURATION=$(CHAOS_DURATION) SLUICE_CHAOS_RATE=$(CHAOS_RATE) SLUICE_CHAOS_KILL_EVERY=$(CHAOS_KILL_EVERY) \
	SLUICE_CHAOS_OUT_DIR=$(CHAOS_OUT_DIR) $(GO) test -count=1 -timeout 40m -run '^TestChaos$$' -v ./chaos/ | grep -E '^(=== RUN|---|ok|FAIL|panic|BENCH|\s+\S+_test\.go)'

# The throughput and memory harness: Sluice against the raw clients in the same run.
bench:
	@set -uo pipefail; \
	trap '$(TESTENV) down' EXIT; \
	$(TESTENV) up --only kafka,postgres,mosquitto,mongodb || exit $$?; \
	source .testenv/env || exit $$?; \
	SLUICE_BENCH_CONNECT_LIB=$$($(TESTENV) connect) || exit $$?; export SLUICE_BENCH_CONNECT_LIB; \
	SLUICE_BENCH=1 $(GO) test -p 1 -count=1 -v -run 'TestThroughput|TestIdleMemory|TestRESTLatency|TestLatencyUnderLoad' ./worker/ ./cmd/sluice/ ./e2e/ | grep -E '^(BENCH|---|ok|FAIL)|rounds:'

# The web console's screenshots in docs/console: the browser tests, writing them there.
screenshots:
	@set -uo pipefail; \
	trap '$(TESTENV) down' EXIT; \
	$(TESTENV) up --only kafka || exit $$?; \
	source .testenv/env || exit $$?; \
	SLUICE_UPDATE_SCREENSHOTS=1 $(GO) test -count=1 -run TestConsoleInABrowser ./rest/console/

vet:
	$(GO) vet $(PKGS)

build:
	$(GO) build -o bin/sluice ./cmd/sluice

dev:
	$(GO) run ./cmd/sluice dev

lint:
	$(LINT) run $(PKGS)

testenv-up:
	$(TESTENV) up $(TESTENV_ARGS)

testenv-down:
	$(TESTENV) down

testenv-status:
	$(TESTENV) status

clean:
	rm -rf bin
