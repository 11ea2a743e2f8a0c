# Two commands do everything: `make dev` (gateway + local NATS + demo) and `make test`.
# Tools the project needs (nats-server >= 2.10, chromium) are installed when missing:
# nats-server into .tools/bin (ignored by git), chromium through apt-get.

SHELL := /bin/bash
NPM_BIN := node_modules/.bin
# npm scripts run on the Node 24 binary of the `node` devDependency (node_modules/.bin/node).
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/.tools/bin:$(PATH)

.PHONY: all deps tools tools-nats build lint format test test-unit test-integration test-browser dev bench clean

all: build

# npm ci whenever the lockfile changed since the last install.
node_modules/.package-lock.json: package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json

tools:
	@bash scripts/ensure-tools.sh all

tools-nats:
	@bash scripts/ensure-tools.sh nats

build: deps
	npm run build

lint: deps
	npm run typecheck
	npm run lint

format: deps
	npm run format

# Every suite: unit, integration (real nats-server, real HTTP, eventsource client) and
# browser (Chromium's own EventSource through playwright-core).
test: deps tools build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm test

test-unit: deps
	npm run test:unit

test-integration: deps tools-nats build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm run test:integration

test-browser: deps tools build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm run test:browser

# A local nats-server with JetStream, the DEMO stream, the gateway with its demo page on
# http://127.0.0.1:8080/ and a ticker publishing to demo.ticker. Ctrl-C stops everything.
dev: deps tools-nats build
	@bash scripts/dev.sh

bench: deps tools-nats build
	NATS_SERVER_BIN="$$(bash scripts/nats-server-path.sh)" npm run bench

clean:
	rm -rf dist coverage .tools/dev-data
