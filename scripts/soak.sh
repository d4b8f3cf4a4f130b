#!/usr/bin/env bash
# Bounded load + soak run against the todo server on 127.0.0.1 (not part of the test command).
#   scripts/soak.sh                          # 16 clients, 60 s, release build
#   SOAK_CLIENTS=32 SOAK_SECONDS=300 scripts/soak.sh
#   SOAK_PROFILE=dev scripts/soak.sh         # debug build (faster to build, slower to run)
# The load client (examples/security-suite/src/bin/load.rs) starts the todo binary in JWT mode
# with keys it generated, mixes valid (70 %), expired (10 %) and hostile (20 %) requests, samples
# the server's RSS from /proc, stops the server and exits non-zero if a valid request failed, an
# expired or hostile one succeeded, or the RSS kept growing.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS="${SOAK_CLIENTS:-16}"
SECS="${SOAK_SECONDS:-60}"
PROFILE="${SOAK_PROFILE:-release}"

if [ "$PROFILE" = "release" ]; then
    cargo build --release -p mcp-auth-examples --bin todo -p mcp-auth-security-suite --bin load
    dir=release
else
    cargo build -p mcp-auth-examples --bin todo -p mcp-auth-security-suite --bin load
    dir=debug
fi
target="${CARGO_TARGET_DIR:-target}"
exec timeout $((SECS + 120)) "$target/$dir/load" --server "$target/$dir/todo" \
    --clients "$CLIENTS" --seconds "$SECS"
