#!/usr/bin/env bash
# apt-need-service.sh PACKAGE: install a Debian package that ships a
# service, for its programs only: the tests start their own instances on
# private configurations, so the package's service must not start (at
# install or later).  Idempotent; does nothing when PACKAGE is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=$1

dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' &&
    exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

# invoke-rc.d asks policy-rc.d whether it may start a service; 101 = no.
# A policy the machine already has is left alone.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || "${sudo[@]}" rm -f "$policy"; }
trap cleanup EXIT

scripts/apt-need.sh "$pkg"

# On a machine with systemd the unit may have been enabled and started
# despite the policy: it must not hold the ports or queues of the tests.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now "$pkg.service" >/dev/null 2>&1 || true
fi
