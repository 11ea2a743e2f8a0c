#!/usr/bin/env bash
# Makes sure the tools the tests need exist, installing only what is missing, so it is cheap to
# call from every `make test` and safe to re-run. Usage: ensure-tools.sh [nats|all] (default all).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NATS_VERSION="v2.14.9"
WHAT="${1:-all}"

case "$WHAT" in
  nats | all) ;;
  *)
    echo "usage: $0 [nats|all]" >&2
    exit 2
    ;;
esac

# Run a command as root: directly when we already are (CI), via sudo when available.
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "ensure-tools: need root to run: $* (not root and no sudo)" >&2
    return 1
  fi
}

ensure_nats() {
  # nats-server-path.sh holds the selection logic so the two scripts can never disagree.
  if "$ROOT/scripts/nats-server-path.sh" >/dev/null; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "ensure-tools: no nats-server >= 2.10 found and no Go toolchain to build one" >&2
    return 1
  fi
  echo "ensure-tools: installing nats-server $NATS_VERSION into $ROOT/.tools/bin" >&2
  mkdir -p "$ROOT/.tools/bin"
  GOBIN="$ROOT/.tools/bin" go install "github.com/nats-io/nats-server/v2@$NATS_VERSION" >&2
  "$ROOT/scripts/nats-server-path.sh" >/dev/null || {
    echo "ensure-tools: nats-server still not usable after install" >&2
    return 1
  }
}

chromium_path() {
  if [[ -x /usr/bin/chromium ]]; then
    echo /usr/bin/chromium
  else
    command -v chromium 2>/dev/null
  fi
}

ensure_chromium() {
  if chromium_path >/dev/null; then
    return 0
  fi
  echo "ensure-tools: installing chromium via apt-get" >&2
  # DEBIAN_FRONTEND keeps apt from prompting in CI; it must be passed through sudo explicitly.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
  chromium_path >/dev/null || {
    echo "ensure-tools: chromium still not found after install" >&2
    return 1
  }
}

ensure_nats
echo "nats-server: $("$ROOT/scripts/nats-server-path.sh")"

if [[ "$WHAT" == "all" ]]; then
  ensure_chromium
  echo "chromium: $(chromium_path)"
fi
