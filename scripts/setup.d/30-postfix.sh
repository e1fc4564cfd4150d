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
scripts/apt-need-service.sh postfix
