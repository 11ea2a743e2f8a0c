#!/usr/bin/env bash
# `make dev`: local nats-server with JetStream, the DEMO stream (demo.>), the gateway with its
# demo page, and a ticker. Ctrl-C stops all of them.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/node_modules/.bin:$PATH"

NATS_PORT="${NATS_PORT:-4222}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:$NATS_PORT}"
export PORT="${PORT:-8080}"
export DEMO=true
# Authorization on, with a throw-away secret: the demo page mints 30 s tokens at /demo/token and
# shows each one expiring and being renewed without losing an event. DEV_AUTH=0 turns it off.
# The secret is kept in .tools/ so a restarted gateway still accepts the page's token.
if [ "${DEV_AUTH:-1}" = "1" ] && [ -z "${AUTH_JWT_SECRET:-}" ]; then
  mkdir -p .tools
  [ -s .tools/dev-jwt-secret ] || od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >.tools/dev-jwt-secret
  AUTH_JWT_SECRET="$(cat .tools/dev-jwt-secret)"
  export AUTH_JWT_SECRET
  # One clock here: tokens end exactly at their exp, so the page shows a renewal every 30 s.
  export AUTH_JWT_LEEWAY_S="${AUTH_JWT_LEEWAY_S:-0}"

fi
export FEED_LINGER_MS="${FEED_LINGER_MS:-30000}"
# Stop quickly in development; production keeps the 10 s drain.
export DRAIN_WINDOW_MS="${DRAIN_WINDOW_MS:-1000}"

# Children run in their own sessions (setsid), so a Ctrl-C reaches only this script, which then
# stops each of them once: a second signal would make the gateway skip its graceful drain.
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null; then
  echo "using the NATS server already listening on 127.0.0.1:$NATS_PORT"
else
  NATS_BIN="$(bash scripts/nats-server-path.sh)"
  mkdir -p .tools/dev-data
  setsid "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$ROOT/.tools/dev-data" >.tools/dev-nats.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break
    sleep 0.1
  done
  echo "nats-server $("$NATS_BIN" --version) on $NATS_URL (log: .tools/dev-nats.log)"
fi

node dist/scripts/ensure-stream.js DEMO 'demo.>'
setsid node dist/src/main.js &
pids+=($!)
setsid node dist/scripts/ticker.js demo.ticker &
pids+=($!)

cat <<MSG

  Demo page:   http://127.0.0.1:$PORT/
  Stream:      curl -N http://127.0.0.1:$PORT/events/demo.ticker
  Health:      curl http://127.0.0.1:${ADMIN_PORT:-9090}/readyz   (and /livez, /metrics)
  Publish:     npm run publish -- demo.chat "hello"
  Ctrl-C stops NATS, the gateway and the ticker.

MSG
wait -n "${pids[@]}"
