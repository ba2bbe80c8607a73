#!/usr/bin/env bash
# Install Debian's prometheus-alertmanager (0.25 on bookworm) for the e2e tests.
#
# Idempotent and never fatal: when the binary is already there it does nothing;
# when we are not root or apt is missing or fails, it prints one notice to stderr
# and exits 0 so the e2e tests can skip themselves. The package must not leave a
# daemon on :9093: service starts are denied during the install through a
# temporary policy-rc.d, and any instance that started anyway is stopped.
set -euo pipefail

AM_BIN="${ALERTMANAGER_BIN:-/usr/bin/prometheus-alertmanager}"
POLICY=/usr/sbin/policy-rc.d

notice() {
    echo "install-alertmanager: $*" >&2
}

if [[ -x "$AM_BIN" ]] || command -v prometheus-alertmanager >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    notice "not root, skipping install of prometheus-alertmanager"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    notice "apt-get not available, skipping install of prometheus-alertmanager"
    exit 0
fi

# Deny service starts (exit 101) unless the image already has a policy.
own_policy=0
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    own_policy=1
fi
cleanup() {
    if [[ "$own_policy" -eq 1 ]]; then
        rm -f "$POLICY"
    fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null \
    || ! apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        prometheus-alertmanager >/dev/null; then
    notice "apt-get install prometheus-alertmanager failed, skipping"
    exit 0
fi

# Belt and braces: stop a packaged daemon that started despite the policy
# (systemd hosts ignore policy-rc.d for some start paths).
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now prometheus-alertmanager.service >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/prometheus-alertmanager ]]; then
    /etc/init.d/prometheus-alertmanager stop >/dev/null 2>&1 || true
fi
# The packaged daemon runs as the "prometheus" user; end it by its own pid. Test
# instances (started as root or a developer) are left alone.
am_real="$(readlink -f "$AM_BIN")"
am_uid="$(id -u prometheus 2>/dev/null || echo none)"
for proc in /proc/[0-9]*; do
    [[ "$(readlink -f "$proc/exe" 2>/dev/null)" == "$am_real" ]] || continue
    [[ "$(stat -c %u "$proc" 2>/dev/null)" == "$am_uid" ]] || continue
    notice "stopping packaged alertmanager pid ${proc#/proc/}"
    kill "${proc#/proc/}" 2>/dev/null || true
done

"$AM_BIN" --version 2>&1 | head -n 1 >&2
