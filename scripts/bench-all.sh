#!/usr/bin/env bash
# Runs every criterion micro-benchmark of the workspace in one go, then prints the key ratios
# (issue 9) from criterion's target/criterion/**/new/estimates.json.
#
#   scripts/bench-all.sh                 # 3 s measurement, 1 s warm-up per benchmark
#   BENCH_TIME=10 scripts/bench-all.sh   # longer, steadier
#   scripts/bench-all.sh --report-only   # only print the ratios of the last run
#
# Figures are criterion medians. The machine is shared: run when `uptime` shows a low load.
set -euo pipefail
cd "$(dirname "$0")/.."

MEASURE=${BENCH_TIME:-3}
WARMUP=${BENCH_WARMUP:-1}
CRATES=(mcp-auth-core mcp-auth-jwt mcp-auth-introspect)

target_dir() {
    if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        echo "$CARGO_TARGET_DIR"
    else
        cargo metadata --format-version 1 --no-deps 2>/dev/null |
            grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4
    fi
}

# The [[bench]] names declared in a crate's Cargo.toml.
bench_names() {
    awk '/^\[\[bench\]\]/{b=1; next} /^\[/{b=0} b && /^name *=/{gsub(/[" ]/,""); sub(/^name=/,""); print}' "$1/Cargo.toml"
}

if [[ "${1:-}" != "--report-only" ]]; then
    echo "== load: $(uptime | sed 's/.*load average/load average/')"
    for crate in "${CRATES[@]}"; do
        mapfile -t names < <(bench_names "$crate")
        if [[ ${#names[@]} -eq 0 ]]; then
            echo "== $crate: no [[bench]] target"
            continue
        fi
        args=()
        for n in "${names[@]}"; do args+=(--bench "$n"); done
        echo "== cargo bench -p $crate ${args[*]}"
        cargo bench -p "$crate" "${args[@]}" -- \
            --measurement-time "$MEASURE" --warm-up-time "$WARMUP" --noplot
    done
    echo "== load after: $(uptime | sed 's/.*load average/load average/')"
fi

CRIT="$(target_dir)/criterion"
[[ -d "$CRIT" ]] || { echo "no criterion results under $CRIT" >&2; exit 1; }

# Median in ns of a benchmark id (its directory under target/criterion), or empty.
median_ns() {
    local f="$CRIT/$1/new/estimates.json"
    [[ -f "$f" ]] || return 0
    # Fields in order: mean, median, ...: the second point_estimate is the median.
    grep -o '"point_estimate":[^,}]*' "$f" | sed -n 2p | cut -d: -f2
}

us() { awk -v n="$1" 'BEGIN { printf "%.3f", n / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
diff_us() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", (a - b) / 1000 }'; }

echo
echo "== every benchmark (median)"
find "$CRIT" -path '*/new/estimates.json' | sort | while read -r f; do
    id=${f#"$CRIT"/}
    id=${id%/new/estimates.json}
    printf '  %-60s %12s us\n' "$id" "$(us "$(median_ns "$id")")"
done

# A never-seen token (verifier with the token cache off) against jsonwebtoken::decode with the
# same key: the verifier keeps public keys parsed, so it should cost at most this fraction.
FRESH_TARGET=0.85
at_most() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { if (b > 0 && a / b <= t) print "met"; else print "MISSED" }'; }

echo
echo "== key ratios"
printf '  %-8s %14s %18s %10s %14s %14s\n' alg "decode (floor)" "verifier no-cache" ratio "added" \
    "<= ${FRESH_TARGET}x"
for alg in RS256 ES256 EdDSA; do
    floor=$(median_ns "verify/jsonwebtoken_decode/$alg")
    cold=$(median_ns "verify/jwt_verifier_no_cache/$alg")
    if [[ -n "$floor" && -n "$cold" ]]; then
        printf '  %-8s %11s us %15s us %9sx %11s us %14s\n' "$alg" "$(us "$floor")" "$(us "$cold")" \
            "$(ratio "$cold" "$floor")" "$(diff_us "$cold" "$floor")" \
            "$(at_most "$cold" "$floor" "$FRESH_TARGET")"
    else
        printf '  %-8s (missing)\n' "$alg"
    fi
done

floor=$(median_ns "verify/jsonwebtoken_decode/RS256")
hit=$(median_ns "verify_token_cache_hit_1KB")
if [[ -n "$hit" ]]; then
    printf '  token-cache hit (1 KB token): %s us' "$(us "$hit")"
    [[ -n "$floor" ]] && printf ' = 1/%s of the RS256 floor' "$(ratio "$floor" "$hit")"
    echo
fi

bare=$(median_ns "layer/unprotected_route")
prot=$(median_ns "layer/protected_route_1k_token")
if [[ -n "$bare" && -n "$prot" ]]; then
    printf '  layer overhead (1 KB token, trivial verifier): %s us added over a bare route (%s us -> %s us, %sx)\n' \
        "$(diff_us "$prot" "$bare")" "$(us "$bare")" "$(us "$prot")" "$(ratio "$prot" "$bare")"
fi

pol=$(median_ns "policy_tools_call_1KiB_parse_and_decide")
[[ -n "$pol" ]] && printf '  policy check (1 KiB tools/call, parse + decide): %s us\n' "$(us "$pol")"

for len in 43 1024; do
    ih=$(median_ns "introspect_cached_verify/$len")
    [[ -n "$ih" ]] && printf '  introspection cache hit (%s-byte token): %s us\n' "$len" "$(us "$ih")"
done
miss=$(median_ns "introspect_miss/verify_uncached_loopback")
[[ -n "$miss" ]] && printf '  introspection miss (loopback stub): %s us\n' "$(us "$miss")"
exit 0
