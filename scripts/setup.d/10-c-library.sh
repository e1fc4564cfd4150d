#!/usr/bin/env bash
# make install's test (tests/install/c-library.sh) builds a milter against
# the staged library with pkg-config, and reads its symbols with nm/readelf.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/apt-need.sh pkg-config binutils
