#!/bin/sh
# Run pymilter 1.0.5's own test files against the installed package (our
# milter, Milter and mime).  Needs the network (pip download); not part of
# run_tests.sh.  Nothing downloaded is kept or committed.
#   python/tests/pymilter_suite.sh [testmime testsample ...]
set -eu
PY=${PY:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: pymilter==1.0.5 -d .
tar xzf pymilter-1.0.5.tar.gz
mkdir run
# Only the tests, their data and the sample milter: the sdist's own
# Milter/ and mime.py must not shadow the package under test.
cp -r pymilter-1.0.5/test pymilter-1.0.5/test*.py pymilter-1.0.5/sample.py run/
rm -f run/test.py
cd run
"$PY" -c 'import milter, Milter, mime, sys
print("testing", milter.__file__, Milter.__file__, mime.__file__)
assert "pymilter-1.0.5" not in Milter.__file__'
exec "$PY" -m unittest -v ${*:-testmime testsample testutils}
