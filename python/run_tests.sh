#!/bin/sh
# Build and install the Python package (milter + Milter + mime) with
# libpmcore compiled in, then run its pytest suite against the installed
# copy.  Exits nonzero on any failure.
#   PY=python3.12 python/run_tests.sh        # another interpreter
#   python/run_tests.sh -k vectors           # extra pytest arguments
#   INSTALL_ONLY=1 python/run_tests.sh       # build and install, no tests
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}

# --no-build-isolation uses the local setuptools (no download) when it is
# there; otherwise pip fetches the build requirements itself.
if "$PY" -c 'import setuptools, wheel, sys
sys.exit(int(setuptools.__version__.split(".")[0]) < 61)' 2>/dev/null; then
    ISO=--no-build-isolation
else
    ISO=
fi
# A fresh build: setuptools would reuse build/ when only flags changed.
rm -rf "$HERE/build"
"$PY" -m pip install --quiet --disable-pip-version-check $ISO \
    --force-reinstall --no-deps "$HERE"
[ "${INSTALL_ONLY:-0}" = 1 ] && exit 0
"$PY" -c 'import pytest' 2>/dev/null ||
    "$PY" -m pip install --quiet --disable-pip-version-check pytest
# Milter.metrics is tested against the real prometheus_client.
"$PY" -c 'import prometheus_client' 2>/dev/null ||
    "$PY" -m pip install --quiet --disable-pip-version-check prometheus_client

# Run from the tests directory so the installed package is the one tested
# (not the source tree), with every xfail and skip listed with its reason.
cd "$HERE/tests"
exec "$PY" -m pytest -q -rxXs -p no:cacheprovider "$@"
