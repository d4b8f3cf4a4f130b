#!/usr/bin/env bash
# Bounded cargo-fuzz smoke run of every target in fuzz/ (not part of the test command).
#   scripts/fuzz.sh            # each target for 60 s
#   FUZZ_SECONDS=300 scripts/fuzz.sh bearer_header
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain; skips (exit 0) with a
# message when either is missing. Seeds live in fuzz/seeds/<target>; new corpus entries go to
# fuzz/corpus/<target> and crashes to fuzz/artifacts/<target> (both git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_EACH="${FUZZ_SECONDS:-60}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(bearer_header jwt_decode policy_parse introspection_response jwks_document forwarded_metadata)
fi

if ! command -v rustup >/dev/null 2>&1 || ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: SKIPPED: no nightly toolchain (install with: rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: SKIPPED: cargo-fuzz is not installed (install with: cargo install cargo-fuzz)"
    exit 0
fi

status=0
for target in "${TARGETS[@]}"; do
    mkdir -p "corpus/$target"
    echo "==> fuzzing $target for ${SECONDS_EACH}s"
    if ! cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10; then
        echo "fuzz.sh: $target FAILED (see fuzz/artifacts/$target)"
        status=1
    fi
done
exit $status
