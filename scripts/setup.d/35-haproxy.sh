#!/usr/bin/env bash
# HAProxy for the pool test (tests/e2e/test_pool.py): only the program is
# used, started by the test with its own configuration on loopback ports.
# The package's own service is kept from starting, as for Postfix.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/apt-need-service.sh haproxy
