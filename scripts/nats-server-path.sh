#!/usr/bin/env bash
# Prints the nats-server binary the tests and Makefile should use, without installing anything.
# Order: a nats-server on PATH that is new enough (>= 2.10, needed for the JetStream APIs the
# gateway uses), else the repo-local .tools/bin/nats-server. Exits 1 when neither qualifies.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MIN_MAJOR=2
MIN_MINOR=10

# True when "$1 --version" reports vMAJOR.MINOR >= MIN_MAJOR.MIN_MINOR.
version_ok() {
  local out major minor
  out="$("$1" --version 2>/dev/null)" || return 1
  # Output looks like "nats-server: v2.14.9".
  if [[ "$out" =~ v?([0-9]+)\.([0-9]+) ]]; then
    major="${BASH_REMATCH[1]}"
    minor="${BASH_REMATCH[2]}"
    ((major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR)))
  else
    return 1
  fi
}

if on_path="$(command -v nats-server 2>/dev/null)" && version_ok "$on_path"; then
  echo "$on_path"
  exit 0
fi

local_bin="$ROOT/.tools/bin/nats-server"
if [[ -x "$local_bin" ]] && version_ok "$local_bin"; then
  echo "$local_bin"
  exit 0
fi

exit 1
