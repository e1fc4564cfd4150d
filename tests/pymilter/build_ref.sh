#!/bin/sh
# Build the reference implementation for the differential test and the
# Python benchmark: pymilter 1.0.5 compiled from its PyPI sdist against
# Debian's libmilter (libmilter-dev), in its own venv so it never meets our
# package.  Idempotent: a venv that already imports the right milter is kept.
#   tests/pymilter/build_ref.sh [VENV]        (default build/pymilter-ref-venv)
set -eu
VENV=${1:-build/pymilter-ref-venv}
PY=${PY:-python3}
if [ -x "$VENV/bin/python" ] &&
   "$VENV/bin/python" -c 'import milter' 2>/dev/null &&
   "$VENV/bin/python" -m pip show pymilter 2>/dev/null |
       grep -q '^Version: 1.0.5$'
then
    exit 0
fi
if [ ! -e /usr/include/libmilter/mfapi.h ]; then
    echo "build_ref: libmilter-dev is missing (run scripts/setup.sh)" >&2
    exit 1
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# --no-binary: pymilter ships only an sdist, but say so, so a wheel cached
# elsewhere can never stand in for the libmilter build.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-binary pymilter pymilter==1.0.5
"$VENV/bin/python" -c 'import milter
print("build_ref: pymilter on libmilter", milter.getversion(),
      milter.__file__)'
