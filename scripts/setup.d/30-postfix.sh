#!/usr/bin/env bash
# Postfix for the end-to-end suite (tests/e2e).  Only its programs are used:
# the suite runs a private instance under a temporary folder.  The system
# instance is installed unconfigured ("No configuration": no main.cf, so it
# cannot start) and the package's scripts are kept from starting services.
set -euo pipefail
cd "$(dirname "$0")/../.."

dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q 'ok installed' &&
    exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

echo 'postfix postfix/main_mailer_type select No configuration' |
    "${sudo[@]}" debconf-set-selections

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

scripts/apt-need.sh postfix

# On a machine with systemd the unit may have been enabled and started
# despite the policy; the suite needs port 25 and the system queue untouched,
# so the system service must not run.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now postfix.service >/dev/null 2>&1 || true
fi
