#!/usr/bin/env bash
# Counts code lines of Rust sources: no blank lines, no comments or docs (`//`, `///`, `//!`,
# `/* */` blocks), nothing from a file's `#[cfg(test)]` module on (tests sit at the end of a
# file). Usage: scripts/code-lines.sh PATH... (files or directories); prints per file and total.
set -euo pipefail
files=$(for p in "$@"; do
    if [ -d "$p" ]; then find "$p" -name '*.rs' -not -path '*/tests/*' -not -path '*/benches/*'; else echo "$p"; fi
done | sort)
total=0
for f in $files; do
    n=$(awk '
        /^[[:space:]]*#\[cfg\(test\)\]/ { exit }
        /^[[:space:]]*\/\*/ { block = 1 }
        block { if ($0 ~ /\*\//) block = 0; next }
        /^[[:space:]]*$/ { next }
        /^[[:space:]]*\/\// { next }
        { n++ }
        END { print n + 0 }
    ' "$f")
    printf '%6d %s\n' "$n" "$f"
    total=$((total + n))
done
printf '%6d total\n' "$total"
