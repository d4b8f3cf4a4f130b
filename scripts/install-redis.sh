#!/usr/bin/env bash
# Makes sure a Redis or Valkey server binary is on PATH for the shared-store tests (the tests
# start their own instance on a free loopback port, persistence off, and stop it). Installs
# `redis-server` from the system's package manager when neither is there (CI runs as root).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || command -v valkey-server >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server
elif command -v dnf >/dev/null 2>&1; then
    $SUDO dnf install -y redis || $SUDO dnf install -y valkey
elif command -v apk >/dev/null 2>&1; then
    $SUDO apk add --no-cache redis
elif command -v brew >/dev/null 2>&1; then
    brew install redis
else
    echo "no redis-server and no known package manager: install Redis or Valkey" >&2
    exit 1
fi
# The Debian package may start a system instance on 6379; the tests never use it.
command -v redis-server >/dev/null 2>&1 || command -v valkey-server >/dev/null 2>&1
