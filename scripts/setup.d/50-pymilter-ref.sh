#!/usr/bin/env bash
# Reference pymilter 1.0.5 on Debian's libmilter, for the Python differential
# test (tests/pymilter/) and `make bench-python`.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/apt-need.sh libmilter-dev
tests/pymilter/build_ref.sh build/pymilter-ref-venv
