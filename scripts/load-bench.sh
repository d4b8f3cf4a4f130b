#!/usr/bin/env bash
# End-to-end load bench of the todo MCP server (issue 9), in one go, on loopback:
#   (1) unprotected   the same todo app (CORS, routing, shared rmcp service) without the auth
#                     layers: the ratios measure what authentication costs
#   (t) trivial       the whole auth stack (CORS, bearer, policy, in-tool checks) around a
#                     verifier that costs nothing: tells the layers' cost from verification's
#   (2) jwt           JwtVerifier, JWKS fetched from a local development issuer, one repeated token
#   (3) jwt-fresh     the same server, a never-seen token on every request (token cache defeated)
#   (4) introspect    IntrospectionVerifier against the real test IdP (oidc-provider), cache warm
#   (F) fastmcp       FastMCP (pinned, in a venv) with its JWTVerifier on the same JWKS, when
#                     python3 is available (LOAD_FASTMCP=0 skips it)
# Every run: stateless JSON `tools/call list_todos` with the same headers, N keep-alive
# connections, closed loop (examples/loadbench `load`). Prints requests/s, p50, p99, server CPU
# per request, peak RSS (VmHWM) per mode, the ratios, and the issue's targets met or missed.
#
# Knobs: LOAD_DURATION (s, 10), LOAD_WARMUP (s, 2), LOAD_CONNECTIONS (16), LOAD_FRESH_TOKENS
# (200000: RS256 tokens minted before the runs; mode 3 ends early, and says so, if they run out),
# LOAD_PORT (18090; the issuer uses +1), LOAD_CLIENT_THREADS (1), LOAD_JWT_CACHE_BYTES (the
# verifier's token-cache budget in modes 2-3; unset: the crate's default).
# Every process started here is stopped on exit; the whole run is bounded by LOAD_TIMEOUT (1200 s).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${LOAD_DURATION:-10}
WARMUP=${LOAD_WARMUP:-2}
CONNS=${LOAD_CONNECTIONS:-16}
FRESH=${LOAD_FRESH_TOKENS:-200000}
PORT=${LOAD_PORT:-18090}
ISS_PORT=$((PORT + 1))
CLIENT_THREADS=${LOAD_CLIENT_THREADS:-1}
FASTMCP=${LOAD_FASTMCP:-1}
CACHE_FLAGS=()
[[ -n "${LOAD_JWT_CACHE_BYTES:-}" ]] && CACHE_FLAGS=(--cache-bytes "$LOAD_JWT_CACHE_BYTES")
FASTMCP_VERSION=4.0.11
TIMEOUT=${LOAD_TIMEOUT:-1200}

if [[ -z "${LOADBENCH_BOUNDED:-}" ]]; then
    # Re-run under a hard time bound (the trap below still stops every child).
    LOADBENCH_BOUNDED=1 exec timeout --signal=TERM --kill-after=20 "$TIMEOUT" "$0" "$@"
fi

if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    TD=$CARGO_TARGET_DIR
else
    TD=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
fi
OUT=$TD/loadbench/run
VENV=$TD/loadbench/venv
BIN=$TD/release/loadbench
URL=http://127.0.0.1:$PORT/mcp
ISSUER=http://127.0.0.1:$ISS_PORT
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

stop() { # pid
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

wait_for() { # file pattern seconds pid what
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if [[ -f "$1" ]] && grep -q "$2" "$1"; then return 0; fi
        if ! kill -0 "$4" 2>/dev/null; then
            echo "$5 exited before it was ready:" >&2
            cat "$1" "${1%.log}.err" 2>/dev/null >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    echo "$5 not ready within $3 s" >&2
    exit 1
}

load_now() { uptime | sed 's/.*load average: //'; }

echo "== building examples/loadbench (release)"
cargo build --release -p mcp-auth-loadbench

echo "== starting the development issuer ($ISSUER), minting $FRESH fresh RS256 tokens"
"$BIN" issuer --bind "127.0.0.1:$ISS_PORT" --audience "$URL" --out "$OUT" --fresh "$FRESH" \
    >"$OUT/issuer.log" 2>&1 &
ISS_PID=$!
PIDS+=("$ISS_PID")
wait_for "$OUT/issuer.ready" . 600 "$ISS_PID" issuer
cat "$OUT/issuer.log"

echo "== starting the test IdP (oidc-provider)"
"$BIN" idp --resource "$URL" --out "$OUT" >"$OUT/idp.log" 2>&1 &
IDP_PID=$!
PIDS+=("$IDP_PID")
wait_for "$OUT/idp.env" IDP_CLIENT_SECRET 300 "$IDP_PID" "test IdP"
# shellcheck disable=SC1091
source "$OUT/idp.env"

# Peak RSS (VmHWM, KiB) and CPU time (utime+stime, clock ticks) of a process.
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

declare -A R
# run NAME TOKENS_FILE [load flags...] -- SERVER COMMAND...
run() {
    local name=$1 tokens=$2
    shift 2
    local flags=()
    while [[ $1 != -- ]]; do flags+=("$1"); shift; done
    shift
    "$@" >"$OUT/$name.log" 2>"$OUT/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    wait_for "$OUT/$name.log" READY 120 "$pid" "server $name"
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.1
    done
    local before
    before=$(load_now)
    local cpu0 cpu1
    cpu0=$(cpu_ticks "$pid")
    local line
    line=$(timeout $((${DURATION%.*} + ${WARMUP%.*} + 60)) "$BIN" load --url "$URL" --tokens "$tokens" \
        --connections "$CONNS" --duration "$DURATION" --warmup "$WARMUP" \
        --threads "$CLIENT_THREADS" "${flags[@]}" 2>"$OUT/$name.load.err" | grep '^RESULT') || {
        echo "load run $name failed:" >&2
        cat "$OUT/$name.load.err" "$OUT/$name.err" >&2
        exit 1
    }
    cpu1=$(cpu_ticks "$pid")
    R[$name.hwm]=$(hwm_kib "$pid")
    stop "$pid"
    local kv
    for kv in ${line#RESULT }; do R[$name.${kv%%=*}]=${kv#*=}; done
    R[$name.cpu_us]=$(awk -v c=$((cpu1 - cpu0)) -v t="$TICK" -v n="${R[$name.all_requests]}" \
        'BEGIN { printf "%.1f", c / t * 1e6 / n }')
    R[$name.load]=$before
    printf '  %-12s %9s req/s  p50 %7.2f ms  p99 %7.2f ms  errors %s  server CPU %6s us/req  peak RSS %6.1f MiB  (load avg %s)\n' \
        "$name" "${R[$name.rps]}" "$(awk -v u="${R[$name.p50_us]}" 'BEGIN{print u/1000}')" \
        "$(awk -v u="${R[$name.p99_us]}" 'BEGIN{print u/1000}')" "${R[$name.errors]}" "${R[$name.cpu_us]}" \
        "$(awk -v k="${R[$name.hwm]}" 'BEGIN{print k/1024}')" "$before"
    sed 's/^/    /' "$OUT/$name.load.err"
}

echo "== runs: ${DURATION}s each after ${WARMUP}s warm-up, $CONNS connections (machine: $(nproc) cores)"
JWKS=$ISSUER/.well-known/jwks.json
run unprotected "$OUT/token.txt" -- "$BIN" serve --mode unprotected --bind "127.0.0.1:$PORT"
run trivial "$OUT/token.txt" -- "$BIN" serve --mode trivial --bind "127.0.0.1:$PORT"
run jwt "$OUT/token.txt" -- "$BIN" serve --mode jwt --bind "127.0.0.1:$PORT" --jwks-uri "$JWKS" --issuer "$ISSUER" "${CACHE_FLAGS[@]}"
FRESH_WARMUP=$WARMUP
WARMUP=0.5 # spend the fresh tokens on the measurement
run jwt-fresh "$OUT/fresh.txt" --fresh -- "$BIN" serve --mode jwt --bind "127.0.0.1:$PORT" --jwks-uri "$JWKS" --issuer "$ISSUER" "${CACHE_FLAGS[@]}"
WARMUP=$FRESH_WARMUP
run introspect "$OUT/opaque.txt" -- "$BIN" serve --mode introspect --bind "127.0.0.1:$PORT" \
    --introspect-endpoint "$IDP_INTROSPECT" --issuer "$IDP_ISSUER" \
    --client-id "$IDP_CLIENT_ID" --client-secret "$IDP_CLIENT_SECRET"
stop "$IDP_PID"

HAVE_FASTMCP=0
if [[ "$FASTMCP" == 1 ]] && command -v python3 >/dev/null; then
    if [[ ! -x "$VENV/bin/python" ]] ||
        ! "$VENV/bin/python" -c "import fastmcp,sys; sys.exit(fastmcp.__version__ != '$FASTMCP_VERSION')" 2>/dev/null; then
        echo "== installing FastMCP $FASTMCP_VERSION into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q -r scripts/loadbench/requirements.txt
    fi
    run fastmcp "$OUT/token.txt" -- "$VENV/bin/python" scripts/loadbench/fastmcp_server.py \
        "$PORT" "$JWKS" "$ISSUER" "$URL"
    HAVE_FASTMCP=1
else
    echo "  (FastMCP reference skipped: no python3 or LOAD_FASTMCP=0)"
fi
stop "$ISS_PID"

f() { awk "BEGIN { if ($2 > 0) printf \"%.${3:-2}f\", $1 / $2; else print \"n/a\" }"; }
verdict() { awk "BEGIN { exit !($1) }" && echo met || echo MISSED; }
rt=${R[trivial.rps]} r1=${R[unprotected.rps]} r2=${R[jwt.rps]} r3=${R[jwt-fresh.rps]} r4=${R[introspect.rps]}

echo
echo "== ratios (requests/s)"
echo "  (2)/(1) jwt / unprotected        $(f "$r2" "$r1")   target >= 0.9: $(verdict "$r2 / $r1 >= 0.9")"
echo "  (t)/(1) trivial / unprotected    $(f "$rt" "$r1")   (auth layers alone)"
echo "  (2)/(t) jwt / trivial            $(f "$r2" "$rt")   (a token-cache hit in place of a free verifier)"
echo "  (3)/(1) jwt-fresh / unprotected  $(f "$r3" "$r1")"
echo "  (4)/(1) introspect / unprotected $(f "$r4" "$r1")"
echo "  (4)/(2) introspect / jwt         $(f "$r4" "$r2")   target >= 0.8: $(verdict "$r4 / $r2 >= 0.8")"

echo
echo "== cost of a fresh token (3) against the RS256 floor"
added_cpu=$(awk -v a="${R[jwt-fresh.cpu_us]}" -v b="${R[unprotected.cpu_us]}" 'BEGIN { printf "%.1f", a - b }')
added_jwt=$(awk -v a="${R[jwt-fresh.cpu_us]}" -v b="${R[jwt.cpu_us]}" 'BEGIN { printf "%.1f", a - b }')
added_wall=$(awk -v a="$r3" -v b="$r1" 'BEGIN { if (a > 0 && b > 0) printf "%.1f", 1e6 / a - 1e6 / b; else print "n/a" }')
echo "  server CPU per request: (3) ${R[jwt-fresh.cpu_us]} us, (2) ${R[jwt.cpu_us]} us, (t) ${R[trivial.cpu_us]} us, (1) ${R[unprotected.cpu_us]} us"
echo "  added by (3): ${added_cpu} us CPU per request over (1), ${added_jwt} us over (2); ${added_wall} us of machine time per request (1/rps)"
FLOOR_JSON=$TD/criterion/verify/jsonwebtoken_decode/RS256/new/estimates.json
if [[ -f "$FLOOR_JSON" ]]; then
    floor=$(grep -o '"point_estimate":[^,}]*' "$FLOOR_JSON" | sed -n 2p | cut -d: -f2)
    floor_us=$(awk -v n="$floor" 'BEGIN { printf "%.1f", n / 1000 }')
    echo "  RS256 floor (criterion median, raw jsonwebtoken decode): ${floor_us} us; added CPU / floor = $(f "$added_jwt" "$floor_us")x (over (2))"
else
    echo "  RS256 floor: no criterion result yet (run scripts/bench-all.sh)"
fi
if [[ "${R[jwt-fresh.exhausted]}" == 1 ]]; then
    echo "  note: the $FRESH fresh tokens ran out after ${R[jwt-fresh.elapsed_s]} s (rates are over that time)"
fi

echo
echo "== peak server RSS (VmHWM), target < 64 MiB"
for m in unprotected trivial jwt jwt-fresh introspect; do
    printf '  %-12s %6.1f MiB  %s\n' "$m" "$(awk -v k="${R[$m.hwm]}" 'BEGIN{print k/1024}')" \
        "$(verdict "${R[$m.hwm]} < 65536")"
done

if [[ "$HAVE_FASTMCP" == 1 ]]; then
    rf=${R[fastmcp.rps]}
    echo
    echo "== against FastMCP $FASTMCP_VERSION (JWTVerifier, same JWKS, same request)"
    printf '  FastMCP: %s req/s, p50 %.2f ms, p99 %.2f ms, peak RSS %.1f MiB\n' "$rf" \
        "$(awk -v u="${R[fastmcp.p50_us]}" 'BEGIN{print u/1000}')" \
        "$(awk -v u="${R[fastmcp.p99_us]}" 'BEGIN{print u/1000}')" \
        "$(awk -v k="${R[fastmcp.hwm]}" 'BEGIN{print k/1024}')"
    echo "  req/s (2)/FastMCP: $(f "$r2" "$rf" 1)x   target >= 30x: $(verdict "$r2 / $rf >= 30")"
    echo "  p99 FastMCP/(2):   $(f "${R[fastmcp.p99_us]}" "${R[jwt.p99_us]}" 1)x   target >= 20x: $(verdict "${R[fastmcp.p99_us]} / ${R[jwt.p99_us]} >= 20")"
    echo "  req/s (3)/FastMCP: $(f "$r3" "$rf" 1)x   (fresh tokens against FastMCP's repeated token)"
fi
echo
echo "load average at the end: $(load_now); raw results and logs in $OUT"
