#!/usr/bin/env bash
# Instructions per request spent in the auth stack of the shipped `todo` binary (issue 20), counted
# by valgrind's callgrind: exact and repeatable on a busy machine, where req/s ratios between two
# runs move by several percent. For each mode users run (TODO_STATELESS=1 and the default session
# mode, both with event-stream answers), the todo binary serves one keep-alive client
# (examples/loadbench `load`, one repeated RS256 token, LAYER_COST_DURATION s under callgrind) and
# the script prints, per request, the inclusive instruction counts of:
#   connection     hyper's dispatcher: everything the server does for the request in user space
#   bearer layer   mcp_auth_core::layer::BearerAuth (its own work, the policy layer excluded)
#   policy layer   mcp_auth_core::policy::McpPolicyService (its own work, the MCP service excluded)
#   of which       token verification (cache hit), header checks, JSON-RPC body parse
#   MCP service    rmcp's streamable HTTP service and the todo tools
# and the auth share: (bearer + policy) / connection. Needs valgrind (`apt-get install valgrind`).
# Knobs: LAYER_COST_DURATION (s, 8), LAYER_COST_PORT (18190; the issuer uses +1).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
DURATION=${LAYER_COST_DURATION:-8}
PORT=${LAYER_COST_PORT:-18190}
ISS_PORT=$((PORT + 1))
URL=http://127.0.0.1:$PORT/mcp
cargo build --release -q -p mcp-auth-loadbench -p mcp-auth-examples --bin loadbench --bin todo
TD=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
BIN=$TD/release/loadbench
OUT=$TD/layer-cost
rm -rf "$OUT"
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$BIN" issuer --bind "127.0.0.1:$ISS_PORT" --audience "$URL" --out "$OUT" --fresh 0 >"$OUT/issuer.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do [[ -f "$OUT/issuer.ready" ]] && break; sleep 0.1; done
[[ -f "$OUT/issuer.ready" ]] || { echo "issuer not ready" >&2; exit 1; }

# Inclusive instructions of the first function whose name contains $2, in annotate output $1.
incl() { grep -F -- "$2" "$1" | head -1 | awk '{ gsub(",", "", $1); print $1 + 0 }'; }

measure() { # mode stateless(0/1) [load flags...]
    local mode=$1 stateless=$2
    shift 2
    local cg=$OUT/$mode.cg
    env -i "PATH=$PATH" RUST_LOG=warn MCP_AUTH_PROVIDER=jwt "MCP_AUTH_RESOURCE_URL=$URL" \
        "MCP_AUTH_JWT_JWKS_URI=http://127.0.0.1:$ISS_PORT/.well-known/jwks.json" \
        "MCP_AUTH_JWT_ISSUER=http://127.0.0.1:$ISS_PORT" "TODO_STATELESS=$stateless" \
        valgrind --tool=callgrind --dump-instr=no "--callgrind-out-file=$cg" \
        "$TD/release/todo" --bind "127.0.0.1:$PORT" >"$OUT/$mode.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 600); do
        grep -q "listening on" "$OUT/$mode.log" 2>/dev/null && break
        sleep 0.1
    done
    local line n
    line=$(timeout $((DURATION + 60)) "$BIN" load --url "$URL" --tokens "$OUT/token.txt" \
        --connections 1 --duration "$DURATION" --warmup 1 "$@" 2>"$OUT/$mode.load.err" | grep '^RESULT')
    n=$(tr ' ' '\n' <<<"$line" | sed -n 's/^all_requests=//p')
    local failed
    failed=$(tr ' ' '\n' <<<"$line" | sed -n 's/^failed=//p')
    kill -TERM "$pid"
    wait "$pid" || true
    if [[ -z "$n" || "$n" == 0 || "${failed:-0}" != 0 ]]; then
        echo "$mode: the load run failed" >&2
        cat "$OUT/$mode.load.err" >&2
        exit 1
    fi
    local a=$OUT/$mode.annotate
    callgrind_annotate --inclusive=yes "$cg" 2>/dev/null | sed 's/ \{2,\}/ /g' >"$a"
    local conn bearer policy service verify creds parse
    conn=$(incl "$a" 'Dispatcher<D,Bs,I,T>::poll_catch')
    bearer=$(incl "$a" 'BearerAuth<S> as tower_service::Service<http::request::Request<B>>>::call::{{closure}}')
    policy=$(incl "$a" 'McpPolicyService<S> as tower_service::Service<http::request::Request<B>>>::call::{{closure}}')
    service=$(incl "$a" 'SharedMcpService<S,M> as tower_service::Service<http::request::Request<axum_core::body::Body>>>::call::{{closure}}')
    verify=$(incl "$a" 'as mcp_auth_core::verifier::TokenVerifier>::verify::{{closure}}')
    creds=$(incl "$a" 'mcp_auth_core::layer::Shared::credentials')
    parse=$(incl "$a" 'mcp_auth_core::policy::parse_operation ')
    awk -v m="$mode" -v n="$n" -v c="$conn" -v b="$bearer" -v p="$policy" -v s="$service" \
        -v v="$verify" -v h="$creds" -v j="$parse" 'BEGIN {
        printf "%-10s %6d requests | per request: connection %7.0f  bearer layer %6.0f  policy layer %6.0f  (verify %5.0f, header %5.0f, body parse %5.0f)  MCP service %7.0f | auth share %.1f%%\n",
            m, n, c / n, (b - p) / n, (p - s) / n, v / n, h / n, j / n, s / n, 100 * (b - s) / c }'
}

echo "== instructions per request (callgrind, one keep-alive client, repeated token)"
measure stateless 1
measure sessions 0 --sessions
