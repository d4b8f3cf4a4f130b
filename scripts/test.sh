#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine (what CI runs through .ci/run).
# Installs what the tests need first: the npm packages of the test IdP (testing/idp) and a Redis
# (or Valkey) server for the shared-store tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test IdP dependencies (npm ci in testing/idp)"
bash testing/idp/install.sh

step "redis-server for the shared-store tests (system package manager when missing)"
bash scripts/install-redis.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p mcp-auth-core --all-targets --features testkit,rmcp -- -D warnings
# The workspace always unifies core's `exchange` feature on: check the library without it too.
cargo clippy -p mcp-auth-core --lib --features rmcp -- -D warnings
# Core for crates that only implement their own TokenVerifier: no reqwest, figment or moka.
cargo clippy -p mcp-auth-core --lib --no-default-features -- -D warnings
if cargo tree -p mcp-auth-core --no-default-features -e normal --prefix none \
    | grep -E '^(reqwest|figment|moka) '; then
  echo "mcp-auth-core without default features still depends on the crates above" >&2
  exit 1
fi

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo test"
cargo test --workspace

step "cargo test: mcp-auth-jwt on its RustCrypto backend (key parsing, the attack suite, DPoP proofs)"
cargo test -p mcp-auth-jwt --no-default-features --features rust-crypto,dev --lib --test attacks --test dpop
