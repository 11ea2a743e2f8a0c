# syntax=docker/dockerfile:1
# (BuildKit's Dockerfile frontend: RUN --mount cache mounts.)
#
# The gateway's container image. Three stages:
#   deps     production dependencies only (`npm ci --omit=dev`), no install scripts
#   build    every dependency, then tsc compiles src/ into dist/src
#   runtime  the Node base image + deps' node_modules + build's dist/src + the demo page,
#            run as 10001:10001
#
# The runtime stage holds no compiler, no tests, no sources and no package manager. It writes
# nothing, so it runs with a read-only root filesystem. test/image/image.test.ts assembles this
# stage's file tree from the instructions below and runs it read-only as 10001 under bubblewrap:
# change this file and that test follows it (or fails when it cannot).
#
# Build: make docker (see the Makefile for the build arguments).

# Matches the `node` devDependency, so the image runs the Node the tests run on. Pin a digest
# too (node:24.9.0-bookworm-slim@sha256:...) for byte-for-byte reproducible builds.
ARG NODE_VERSION=24.9.0

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: no production dependency needs one (the gateway starts without them, see
# the image test), and none of their code runs at build time.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# tsc through the base image's node, not `npm run build`: that would put the `node`
# devDependency first on PATH, and its binary is fetched by the install script skipped here.
# Only src/ is in the build context, so tsconfig.build.json compiles src/ alone into dist/src.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
# The gateway never uses npm, npx, corepack or yarn: take them out of the attack surface.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx \
    /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
# Left at V8's default, the young generation grows by some 45 MiB under the allocation of a
# connection storm and keeps it: ~4.5 kB per connection at 10,000. 8 MiB semi-spaces cost no
# measurable CPU per delivery (BENCHMARKS.md). Replace NODE_OPTIONS whole to change it.
ENV NODE_OPTIONS=--max-semi-space-size=8
WORKDIR /app
# Owned by root and not writable by the gateway's user.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# The demo page (DEMO=true), one static file.
COPY demo ./demo

# Set by `make docker`. Declared late, so a new revision does not invalidate the layers above.
ARG VERSION
ARG REVISION
ARG SOURCE
ARG CREATED
LABEL org.opencontainers.image.title="jetstream-sse-gateway" \
      org.opencontainers.image.description="NATS JetStream subjects served to browsers as server-sent events, with stream-sequence ids and exact resume on any pod." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}"

# PORT: server-sent events. ADMIN_PORT: /livez, /readyz, /metrics.
EXPOSE 8080 9090
# Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd entry.
USER 10001:10001
# No docker-entrypoint.sh shell step: node is PID 1 and gets SIGTERM itself (npm would not
# forward it), and drains. No HEALTHCHECK: Kubernetes probes /livez and /readyz on ADMIN_PORT.
ENTRYPOINT []
CMD ["node", "dist/src/main.js"]
