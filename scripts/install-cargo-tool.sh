#!/usr/bin/env bash
# Makes sure a cargo subcommand CI uses is installed, at the version pinned here:
#   scripts/install-cargo-tool.sh cargo-hack
# Skips when the tool already answers `--version` with that version (a machine or CI cache that
# kept ~/.cargo/bin pays nothing); otherwise `cargo install --locked` builds it from crates.io.
set -euo pipefail

tool="${1:?usage: install-cargo-tool.sh cargo-hack|cargo-machete}"
case "$tool" in
    # Feature matrix of the published crates (scripts/test.sh).
    cargo-hack) version="0.6.46" ;;
    # Unused dependencies, on stable (cargo-udeps would need nightly).
    cargo-machete) version="0.9.2" ;;
    *) echo "install-cargo-tool.sh: unknown tool $tool" >&2; exit 2 ;;
esac

# `cargo hack --version` prints "cargo-hack 0.6.46"; cargo-machete prints its bare version.
sub="${tool#cargo-}"
if installed="$(cargo "$sub" --version 2>/dev/null)" && [[ "$installed" == *"$version"* ]]; then
    exit 0
fi
echo "installing $tool $version (cargo install --locked)"
cargo install --locked --quiet "$tool" --version "$version"
