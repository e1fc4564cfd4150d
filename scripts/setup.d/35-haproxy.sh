#!/usr/bin/env bash
# HAProxy for the pool test (tests/e2e/test_pool.py): only the program is
# used, started by the test with its own configuration on loopback ports.
# The package's own service is kept from starting, as for Postfix.
set -euo pipefail
cd "$(dirname "$0")/../.."

dpkg-query -W -f='${Status}' haproxy 2>/dev/null | grep -q 'ok installed' &&
    exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

# invoke-rc.d asks policy-rc.d whether it may start a service; 101 = no.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || "${sudo[@]}" rm -f "$policy"; }
trap cleanup EXIT

scripts/apt-need.sh haproxy

if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now haproxy.service >/dev/null 2>&1 || true
fi
