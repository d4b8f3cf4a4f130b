#!/usr/bin/env bash
# Load bench of several replicas (issue 17): the shipped `todo` binary in introspection mode
# against the real test IdP (oidc-provider), three replicas sharing one Redis store
# (MCP_AUTH_STORE_URL) next to one process, all on loopback.
#
# Modes (each on fresh server processes, so the process caches start empty):
#   single-warm         1 process, no store, one repeated token (its cache warm after the first)
#   replicas-warm       3 replicas + Redis, one repeated token, the shared entry written before
#                       the run (one probe request)
#   single-cold         1 process, no store, REPLICAS_TOKENS distinct tokens cycled (each first
#                       use is a cache miss)
#   replicas-cold       3 replicas + Redis (emptied before), the same distinct tokens cycled
#   replicas-nostore    3 replicas without a store, the same distinct tokens cycled (what the
#                       store saves)
# The load generator (examples/loadbench `load`) spreads its keep-alive connections round robin
# over the replicas (`--connect`), sending the public URL's Host as a load balancer would.
# For each mode: requests, req/s, p50/p99 latency, IdP introspection calls (the IdP's own
# count), IdP calls per 1,000 requests, and store round trips per request (Redis `GET` (a store
# get is a GET/PTTL pipeline, one round trip) plus `SET`, from INFO commandstats).
#
# Knobs: REPLICAS_DURATION (s, 8), REPLICAS_WARMUP (s, 1), REPLICAS_CONNECTIONS (12),
# REPLICAS_TOKENS (300), REPLICAS_PORT (18190; replicas use +1 and +2), REPLICAS_TTL (cache TTL,
# s, 60). Every process started here is stopped on exit; bounded by REPLICAS_TIMEOUT (900 s).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${REPLICAS_DURATION:-8}
WARMUP=${REPLICAS_WARMUP:-1}
CONNS=${REPLICAS_CONNECTIONS:-12}
NTOKENS=${REPLICAS_TOKENS:-300}
PORT=${REPLICAS_PORT:-18190}
TTL=${REPLICAS_TTL:-60}
TIMEOUT=${REPLICAS_TIMEOUT:-900}

if [[ -z "${REPLICAS_BOUNDED:-}" ]]; then
    REPLICAS_BOUNDED=1 exec timeout --signal=TERM --kill-after=20 "$TIMEOUT" "$0" "$@"
fi

bash scripts/install-redis.sh
REDIS_BIN=$(command -v redis-server || command -v valkey-server)
REDIS_CLI=$(command -v redis-cli || command -v valkey-cli)

if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    TD=$CARGO_TARGET_DIR
else
    TD=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
fi
OUT=$TD/loadbench/replicas
BIN=$TD/release/loadbench
TODO_BIN=$TD/release/todo
URL=http://127.0.0.1:$PORT/mcp
rm -rf "$OUT"
mkdir -p "$OUT"

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building the todo binary and examples/loadbench (release)"
cargo build --release -p mcp-auth-loadbench -p mcp-auth-examples --bin loadbench --bin todo

# A free port for Redis (persistence off, loopback only).
REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$OUT" \
    --loglevel warning >"$OUT/redis.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do "$REDIS_CLI" -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
"$REDIS_CLI" -p "$REDIS_PORT" ping >/dev/null
STORE_URL=redis://127.0.0.1:$REDIS_PORT/0

echo "== starting the test IdP (oidc-provider), minting $NTOKENS opaque tokens"
"$BIN" idp --resource "$URL" --out "$OUT" --count "$NTOKENS" >"$OUT/idp.log" 2>&1 &
IDP_PID=$!
PIDS+=("$IDP_PID")
for _ in $(seq 3000); do
    [[ -f "$OUT/idp.env" ]] && grep -q IDP_CLIENT_SECRET "$OUT/idp.env" && break
    kill -0 "$IDP_PID" 2>/dev/null || { cat "$OUT/idp.log" >&2; exit 1; }
    sleep 0.1
done
# shellcheck disable=SC1091
source "$OUT/idp.env"
head -n 1 "$OUT/opaque.txt" >"$OUT/one.txt"

idp_count() { curl -sf "$IDP_ISSUER/test/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["introspection"])'; }
redis_trips() {
    "$REDIS_CLI" -p "$REDIS_PORT" info commandstats |
        awk -F'[:=,]' '/^cmdstat_(get|set):/ { n += $3 } END { print n + 0 }'
}

SERVERS=()
start_replicas() { # count store_url
    SERVERS=()
    local i
    for ((i = 0; i < $1; i++)); do
        local p=$((PORT + i))
        env -i PATH="$PATH" RUST_LOG=warn \
            MCP_AUTH_PROVIDER=introspect MCP_AUTH_RESOURCE_URL="$URL" \
            MCP_AUTH_INTROSPECT_URL="$IDP_INTROSPECT" MCP_AUTH_INTROSPECT_CLIENT_ID="$IDP_CLIENT_ID" \
            MCP_AUTH_INTROSPECT_CLIENT_SECRET="$IDP_CLIENT_SECRET" \
            MCP_AUTH_AUTHORIZATION_SERVERS="$IDP_ISSUER" MCP_AUTH_INTROSPECT_CACHE_TTL_SECS="$TTL" \
            TODO_STATELESS=1 ${2:+MCP_AUTH_STORE_URL=$2} \
            "$TODO_BIN" --bind "127.0.0.1:$p" >"$OUT/todo-$p.log" 2>"$OUT/todo-$p.err" &
        SERVERS+=("$!")
        PIDS+=("$!")
    done
    for ((i = 0; i < $1; i++)); do
        local p=$((PORT + i)) ok=
        for _ in $(seq 300); do
            if grep -q "listening on" "$OUT/todo-$p.log" 2>/dev/null; then ok=1; break; fi
            sleep 0.1
        done
        [[ -n "$ok" ]] || { cat "$OUT/todo-$p.err" >&2; exit 1; }
    done
}
stop_replicas() {
    local p
    for p in "${SERVERS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    SERVERS=()
}

declare -A R
measure() { # name replicas store tokens_file [load flags...]
    local name=$1 n=$2 store=$3 tokens=$4
    shift 4
    start_replicas "$n" "$store"
    local connect=127.0.0.1:$PORT i
    for ((i = 1; i < n; i++)); do connect+=",127.0.0.1:$((PORT + i))"; done
    local idp0 trips0 line
    idp0=$(idp_count)
    trips0=$(redis_trips)
    line=$("$BIN" load --url "$URL" --connect "$connect" --tokens "$tokens" --connections "$CONNS" \
        --duration "$DURATION" --warmup "$WARMUP" "$@" 2>"$OUT/$name.load.err" | grep '^RESULT')
    local kv
    for kv in ${line#RESULT }; do R[$name.${kv%%=*}]=${kv#*=}; done
    R[$name.idp]=$(($(idp_count) - idp0))
    R[$name.trips]=$(($(redis_trips) - trips0))
    stop_replicas
}

echo "== single-warm";      measure single-warm 1 "" "$OUT/one.txt"
"$REDIS_CLI" -p "$REDIS_PORT" flushall >/dev/null
echo "== replicas-warm";    measure replicas-warm 3 "$STORE_URL" "$OUT/one.txt"
echo "== single-cold";      measure single-cold 1 "" "$OUT/opaque.txt" --cycle
"$REDIS_CLI" -p "$REDIS_PORT" flushall >/dev/null
echo "== replicas-cold";    measure replicas-cold 3 "$STORE_URL" "$OUT/opaque.txt" --cycle
echo "== replicas-nostore"; measure replicas-nostore 3 "" "$OUT/opaque.txt" --cycle

echo
echo "RESULTS (duration ${DURATION}s after ${WARMUP}s warm-up, $CONNS connections, $NTOKENS tokens in cold modes, $(nproc) cores)"
printf '%-18s %9s %9s %9s %9s %8s %12s %14s\n' mode requests req/s p50_us p99_us idp_calls idp/1000req store_trips/req
for m in single-warm replicas-warm single-cold replicas-cold replicas-nostore; do
    all=${R[$m.all_requests]:-0}
    per1000=$(awk -v c="${R[$m.idp]}" -v n="$all" 'BEGIN { printf "%.2f", n ? c * 1000 / n : 0 }')
    trips=$(awk -v t="${R[$m.trips]}" -v n="$all" 'BEGIN { printf "%.4f", n ? t / n : 0 }')
    printf '%-18s %9s %9s %9s %9s %8s %12s %14s\n' "$m" "$all" "${R[$m.rps]}" "${R[$m.p50_us]}" \
        "${R[$m.p99_us]}" "${R[$m.idp]}" "$per1000" "$trips"
done
echo "(idp_calls and store trips count every request, warm-up and probe included; req/s and"
echo " percentiles cover the measured window only)"
