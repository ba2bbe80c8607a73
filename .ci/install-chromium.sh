#!/usr/bin/env bash
# Install Debian's chromium for the browser smoke tests of the admin console.
#
# Idempotent and never fatal: when the binary is already there it does nothing;
# when we are not root or apt is missing or fails, it prints one notice to stderr
# and exits 0 so the browser tests can skip themselves. Playwright drives this
# binary (executable_path); it never downloads a browser of its own.
set -euo pipefail

CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"

notice() {
    echo "install-chromium: $*" >&2
}

if [[ -x "$CHROMIUM_BIN" ]]; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    notice "not root, skipping install of chromium"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    notice "apt-get not available, skipping install of chromium"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null \
    || ! apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        chromium >/dev/null; then
    notice "apt-get install chromium failed, skipping"
    exit 0
fi

"$CHROMIUM_BIN" --version 2>&1 | head -n 1 >&2 || true
