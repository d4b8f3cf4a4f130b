#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine (what CI runs through .ci/run).
# Installs what the tests need first: the npm packages of the test IdP (testing/idp) and a Redis
# (or Valkey) server for the shared-store tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# CI builds everything once from cold: incremental compilation only costs time and disk there,
# and line tables keep file:line in panics and backtraces while the linker handles far less
# debug info for the 64 test binaries (the run must stay under 20 minutes on 2 cores).
if [[ "${CI:-}" == true ]]; then
    export CARGO_INCREMENTAL=0
    export CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi

START=$SECONDS
step() { printf '\n==> [%ds] %s\n' "$((SECONDS - START))" "$*"; }
# Test IdP starts that stayed silent and were retried (testing/idp-harness, RETRY_LOG): printed at
# the end, pass or fail, so a run saved by a retry still shows what the stuck process was doing.
RETRIES="${TMPDIR:-/tmp}/mcp-auth-idp-start-retries.log"
rm -f "$RETRIES"
finish() {
    local rc=$?
    if [[ -s "$RETRIES" ]]; then
        printf '\n==> test IdP starts retried (silent attempts killed):\n'
        cat "$RETRIES"
    fi
    printf '\n==> [%ds] done (exit %s)\n' "$((SECONDS - START))" "$rc"
}
trap finish EXIT

step "test IdP dependencies (npm ci in testing/idp)"
bash testing/idp/install.sh

step "redis-server for the shared-store tests (system package manager when missing)"
bash scripts/install-redis.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "rust-version: no dependency of a published crate needs a newer Rust (cargo metadata)"
python3 scripts/check-rust-version.py

step "unused dependencies: cargo machete (workspace and fuzz/)"
bash scripts/install-cargo-tool.sh cargo-machete
cargo machete --skip-target-dir

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

# Features are additive and every feature a user can pick builds: core with each of its features
# alone (default features off), and the crates on mcp-auth-jwt with each feature alone and in pairs
# on exactly one of its crypto backends. Libraries only, linted (warnings are errors: a feature
# combination that leaves an import unused fails); the tests run once, below, on all features.
step "feature matrix: cargo hack clippy (published crates, each feature, one crypto backend)"
bash scripts/install-cargo-tool.sh cargo-hack
cargo hack clippy --quiet -p mcp-auth-core --each-feature --exclude-features default \
    -- -D warnings
cargo hack clippy --quiet -p mcp-auth-jwt -p mcp-auth-introspect -p mcp-auth-scalekit \
    -p mcp-auth-workos --feature-powerset --depth 2 --exclude-features default \
    --at-least-one-of aws-lc-rs,rust-crypto --mutually-exclusive-features aws-lc-rs,rust-crypto \
    -- -D warnings

# Not a workspace member (cargo-fuzz wants its own workspace); compiled here on stable against
# its committed lockfile, in the workspace's target dir so the dependencies checked above are
# reused. Running the fuzzers needs nightly: scripts/fuzz.sh.
step "fuzz targets compile (cargo clippy on fuzz/, stable, locked)"
CARGO_TARGET_DIR="$PWD/target" cargo clippy --manifest-path fuzz/Cargo.toml --bins --locked \
    --no-default-features \
    --quiet -- -D warnings

# Core for crates that only implement their own TokenVerifier (the matrix above builds it without
# default features): its dependency graph then has no reqwest, figment or moka.
if cargo tree -p mcp-auth-core --no-default-features -e normal --prefix none \
    | grep -E '^(reqwest|figment|moka) '; then
  echo "mcp-auth-core without default features still depends on the crates above" >&2
  exit 1
fi

step "cargo doc (all features, as docs.rs builds them; warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --quiet

step "cargo test (all features: with both crypto backends on, mcp-auth-jwt uses aws-lc-rs)"
cargo test --workspace --all-features

step "cargo test: mcp-auth-jwt on its RustCrypto backend (key parsing, the attack suite, DPoP proofs)"
cargo test -p mcp-auth-jwt --no-default-features --features rust-crypto,dev --lib --test attacks --test dpop

# The five published crates packaged in one run, as `cargo publish` would package them: manifest
# metadata, README, versioned sibling dependencies, the file list. Not verified by a build of the
# packages: that build took 113 s of a fresh clone's 20-minute budget (measured), and the feature
# matrix above already builds each of these crates alone, from the same files (no crate includes
# a file from outside its own folder).
step "cargo package: the five published crates"
cargo package --locked --quiet --no-verify -p mcp-auth-core -p mcp-auth-jwt \
    -p mcp-auth-introspect -p mcp-auth-scalekit -p mcp-auth-workos
