#!/bin/sh
# The Python package on every CPython it supports (3.8 to 3.13): for each
# interpreter found (pyenv's, or python3.N on PATH), a fresh venv, the
# package built and installed there, and its whole pytest suite.  The
# default interpreter's run is part of `make test`; this is the rest.
# Prints one line per version and a final "N passed, M failed" (versions);
# a version that is not installed here is listed as such, not counted.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BUILD:-$ROOT/build}/pyversions
mkdir -p "$WORK"
passed=0 failed=0 missing=""
pythons=$("$ROOT/scripts/find-pythons.sh")
for minor in 8 9 10 11 12 13; do
    py=$(echo "$pythons" | sed -n "s/^3\.$minor //p")
    if [ "$py" = - ]; then
        missing="$missing 3.$minor"
        continue
    fi
    venv=$WORK/3.$minor
    log=$WORK/3.$minor.log
    rm -rf "$venv"
    if "$py" -m venv "$venv" >"$log" 2>&1 &&
        PY="$venv/bin/python" "$ROOT/python/run_tests.sh" >>"$log" 2>&1
    then
        passed=$((passed + 1))
        echo "ok   CPython 3.$minor ($py): $(grep -E " passed| failed" "$log" | tail -n 1)"
    else
        failed=$((failed + 1))
        echo "FAIL CPython 3.$minor ($py): see $log"
        tail -n 20 "$log" | sed 's/^/    /'
    fi
done
[ -n "$missing" ] && echo "not installed here:$missing"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
