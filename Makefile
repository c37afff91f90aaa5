# bkcache — see README.md. `make test` is the one command CI runs.
SHELL := /bin/bash
GO ?= go

.PHONY: test unit testenv-up testenv-down demo demo-real bench churn real mounts-dance dist lint

# Unit + end-to-end tests against real servers (started by scripts/testenv).
test: testenv-up
	source .testenv/env && BKCACHE_REQUIRE_E2E=1 $(GO) test -race -shuffle=on -timeout 70m ./...

# Unit tests only; end-to-end tests skip without the test environment.
unit:
	$(GO) test -race -shuffle=on -short -timeout 20m ./...

# The embedded default: a local buildkitd and a local cache, examples/demo
# built cold, warm on a wiped builder, and on a new branch.
demo:
	scripts/demo

# bkcache building itself with a local cache (issue 20): cold, warm and a
# one-file PR, each on a fresh buildkitd; prints the three times. Needs
# make test's set-up and the Go module proxy.
demo-real:
	scripts/demo-real

testenv-up:
	scripts/testenv up
	scripts/testenv-builders up

testenv-down:
	scripts/testenv-builders down
	scripts/testenv down

# Cross-compile release binaries into dist/ (VERSION=v1.2.3 make dist).
dist:
	scripts/dist.sh $(VERSION)

# Static checks; .ci/run fails on any finding. gofmt, go vet, go.mod in
# step with the imports, dead code (staticcheck's unused check, U1000), and
# every workflow (actionlint runs shellcheck on run: blocks when present).
# The tools are pinned and built from the Go module proxy.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
ACTIONLINT := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
lint:
	@unformatted=$$(git ls-files -co --exclude-standard '*.go' | xargs gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt: not formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) run $(STATICCHECK) -checks U1000 ./...
	$(GO) run $(ACTIONLINT)

# Benchmarks against the test environment (issue 7); writes BENCHMARKS.md,
# including the Go micro-benchmarks. Knobs: BENCHFLAGS='-runs 1 -backends registry'
# (see `go run ./bench -h`); warm builds push to a new repository (warm), to
# the cold build's (warm-samerepo) or nowhere (warm-nooutput, a PR check).
# On the testbed's docker-container builders (scripts/testenv-builders up,
# pruned between runs), issue 25:
#   BENCHFLAGS='-builder docker-container -suite biglayer,multistage'
#   BENCHFLAGS='-builder bridge -suite biglayer,multistage -backends registry,local,gha,gha-endpoint'
# (the bridge builder cannot reach s3, azblob or gha-stock on the loopback).
bench: testenv-up churn real
	source .testenv/env && { [ ! -f .testenv/builders.env ] || source .testenv/builders.env; } && $(GO) run ./bench $(BENCHFLAGS)

# The real-project benchmarks (issue 20): bkcache building itself and a
# Node.js service, cold, warm, one-file PR and dependency bump, with no
# cache, build-push-action's gha and bkcache's defaults at 10 ms each way,
# 3 runs (under an hour); builds the Debian base images first
# (scripts/bench-images, cached). Writes bench/real/results.md and
# bench/real/real.png, which `go run ./bench` puts first in BENCHMARKS.md.
# Knobs (see `go run ./bench/real -h`): the whole matrix, about three hours,
# REALFLAGS='-raw bench/real.json -configs nocache,gha-stock,gha,registry,s3 -delays 0,10';
# a quick look, REALFLAGS='-runs 1 -suites node -delays 0'.
REALFLAGS ?= -raw bench/real.json
real: testenv-up
	scripts/bench-images
	source .testenv/env && eval "$$(scripts/bench-images env)" && $(GO) run ./bench/real $(REALFLAGS)

# The comparison with buildkit-cache-dance (issue 21): its released action
# (v3.2.0's dist/index.js under Node.js, vendored in bench/mounts/testdata)
# against bkcache's mount helper, on the docker-container builder of
# scripts/testenv-builders, zstd level 1 on both sides, and both stores'
# transfers through the gha emulator (@actions/cache for cache-dance,
# bkcache's gha mount store for bkcache). 5 runs of a 500 MB mount, medians
# and ranges. Needs `scripts/testenv up` and `scripts/testenv-builders up`;
# rewrites only its section of bench/mounts/results.md, which
# `go run ./bench` puts in BENCHMARKS.md. Knobs: DANCEFLAGS='-runs 1 -mb 50'.
DANCEFLAGS ?=
mounts-dance:
	source .testenv/env && source .testenv/builders.env && $(GO) run ./bench/mounts -dance $(DANCEFLAGS)

# The cache-economy simulation (issues 14, 24): a month of pull-request
# churn against the gha emulator with GitHub's policies (7-day expiry,
# hourly eviction batches), at 10×, 3× and 2× quota, 5 seeds, every
# strategy and ablation side by side; writes bench/churn/results.md, which
# `go run ./bench` puts in BENCHMARKS.md. Blobs stay in memory, so it needs
# no test environment. Knobs (see `go run ./bench/churn -h`):
# CHURNFLAGS='-seeds 1,2 -ratios 2 -days 14 -ablations=false'.
CHURNFLAGS ?=
churn:
	$(GO) run ./bench/churn $(CHURNFLAGS)
