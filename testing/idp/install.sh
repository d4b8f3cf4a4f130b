#!/usr/bin/env bash
# Installs the test IdP's npm dependencies exactly as locked. Idempotent: does nothing when
# node_modules already matches package-lock.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json node_modules/.install-stamp; then
  exit 0
fi
npm ci --quiet --no-audit --no-fund --loglevel=error
cp package-lock.json node_modules/.install-stamp
