# bop AOF gateway: build, test and run everything from here.
#
#   make run    gateway + embedded NATS + local S3 (versitygw) + the demo
#   make test   installs tools, vets, runs every test (race detector on the
#               packages that share state)
#   make bench  benchmarks, each next to its baseline from the same run

GO        ?= go
BIN       := $(CURDIR)/bin
VERSITYGW_VERSION := v1.8.0
VERSITYGW := $(BIN)/versitygw
JAEGER    := $(BIN)/jaeger
PROMETHEUS_VERSION := v0.316.0
PROMTOOL  := $(BIN)/promtool

# Packages whose types are used from several goroutines run under -race.
RACE_PKGS := ./internal/... ./tiers/... ./manifest/... ./ingest/... ./control/... ./fsck/... ./readservice/... ./aofclient/... ./cluster/... ./ownership/...
# Everything else (configuration, tracing setup, binaries, end-to-end tests).
PLAIN_PKGS = $(shell $(GO) list ./... | grep -v -E '/(internal|tiers|manifest|ingest|control|fsck|readservice|aofclient|cluster|ownership|integration)(/|$$)')
# The integration packages start NATS clusters, S3 servers and gateway
# processes: run one package at a time, so that on a 2-core CI machine one
# package's elections and lease renewals do not starve the other's.
INTEGRATION_PKGS := ./integration/harness/ ./integration/

TEST_TIMEOUT ?= 15m

.PHONY: all tools build test test-race test-plain vet bench run fuzz docs clean

all: build

# Jaeger and promtool each take about 9 minutes to build on two cores from a
# cold module cache: a sub-make installs the three tools in parallel even
# under a plain `make test`, so that a fresh clone stays under 20 minutes.
tools:
	@$(MAKE) --no-print-directory -j3 $(VERSITYGW) $(JAEGER) $(PROMTOOL)

$(VERSITYGW):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

# Jaeger all-in-one, the trace viewer of the observability test.
$(JAEGER):
	./scripts/install-jaeger.sh

# promtool runs the alert rule unit tests (deploy/prometheus/alerts_test.yml).
$(PROMTOOL):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...

test: tools vet build test-race test-plain

test-race:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(RACE_PKGS)

test-plain:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PLAIN_PKGS)
	$(GO) test -p 1 -count=1 -timeout $(TEST_TIMEOUT) $(INTEGRATION_PKGS)

# Every benchmark prints its figure next to a baseline measured in the same run.
bench: tools
	$(GO) test -run '^$$' -bench AppendGroupCommit -benchmem -count 1 ./tiers/segment/
	$(GO) test -run '^$$' -bench Replay -benchtime 3x ./manifest/
	$(GO) test -run '^$$' -bench . -benchtime 3x ./tiers/tier1/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./tiers/
	$(GO) test -run '^$$' -bench IngestVsPlainConsumer -benchtime 1x -timeout 30m ./ingest/
	AOF_BENCH_BROKER=embedded $(GO) test -run '^$$' -bench IngestVsPlainConsumer -benchtime 1x -timeout 30m ./ingest/
	$(GO) test -run '^$$' -bench PipelineCPUPerMessage -benchtime 2x ./ingest/
	$(GO) test -run '^$$' -bench 'ColdScanVsJetStreamOrderedConsumer|FirstRecordOfAColdStream|FollowLatency' -benchtime 1x -timeout 60m ./aofclient/
	$(GO) test -run '^$$' -bench ReplicaReadVsOwner -benchtime 1x -timeout 30m ./readservice/
	$(GO) test -run '^$$' -bench ReplayVsJetStreamPublishAsync -benchtime 1x -timeout 30m ./cmd/aof2-admin/
	$(GO) test -run '^$$' -bench Failover -benchtime 1x -timeout 30m ./integration/
	$(GO) test -run '^$$' -bench ScaleOut -benchtime 1x -timeout 30m ./integration/
	$(GO) test -run '^$$' -bench IngestWithOwnership -benchtime 1x -timeout 30m ./cmd/aof-gateway/
	$(GO) test -run '^$$' -bench GatewayVsPlainConsumer -benchtime 1x -timeout 60m ./integration/

# Regenerates docs/cli-reference.md and the configuration key table.
docs:
	$(GO) run ./cmd/aof2-admin gen-docs --out docs/cli-reference.md
	$(GO) test ./docs -run '^TestConfigKeyTableIsCurrent$$' -count=1 -args -update-docs

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeRecord -fuzztime 30s ./tiers/segment/
	$(GO) test -run '^$$' -fuzz FuzzRecover -fuzztime 30s -fuzzminimizetime 2s ./tiers/segment/
	$(GO) test -run '^$$' -fuzz FuzzDecodeRecord -fuzztime 30s ./manifest/
	$(GO) test -run '^$$' -fuzz FuzzReadChunk -fuzztime 30s ./manifest/
	$(GO) test -run '^$$' -fuzz FuzzDecodeEnvelope -fuzztime 30s ./ingest/
	$(GO) test -run '^$$' -fuzz FuzzParseAckReply -fuzztime 30s ./ingest/
	$(GO) test -run '^$$' -fuzz FuzzChecksum3 -fuzztime 30s ./tiers/segment/
	$(GO) test -run '^$$' -fuzz FuzzDecodePack -fuzztime 30s ./readapi/

run: $(VERSITYGW) build
	./scripts/run-local.sh

clean:
	rm -rf $(BIN) ./data
