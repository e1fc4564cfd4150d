#!/bin/sh
# Run pymilter's own test files against our installed package (milter,
# Milter, mime): testmime, testsample and testutils from the pymilter 1.0.5
# sdist, testgrey from the pymilter 1.0 sdist (the last sdist on PyPI that
# ships it; 1.0.5's does not), and testcfg_local.py (ours: pymilter's
# testcfg.py is in no sdist on PyPI) against the 1.0.5 sdist's
# test/pysrs.cfg.  testsample imports `template`, which no sdist on PyPI
# ships in a form that runs on Python 3: tests/pymilter/template.py (ours)
# stands in.  Everything is downloaded with pip from PyPI into a temporary
# directory and removed afterwards; nothing is committed.  Each file's
# suite() runs, as pymilter's test.py does (so testutils also runs the
# doctests of our Milter.utils/dynip/pyip6).
#   tests/pymilter/run_suite.sh [FILE...]     (default: all five)
#   PY=path/to/python (default build/venv/bin/python, with our package)
# Last line: "N passed, M failed"; exit status nonzero on any failure.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PY:-$ROOT/build/venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
cd "$WORK"
for v in 1.0.5 1.0; do
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary :all: "pymilter==$v" -d "dl$v" 2>&1 |
        grep -v '^WARNING: Location' >&2 || true
    mkdir "src$v"
    tar xzf "dl$v/pymilter-$v.tar.gz" -C "src$v"
done
S=src1.0.5/pymilter-1.0.5
mkdir run
# Only the tests, their data and the sample milters: the sdists' own Milter/
# and mime.py must not shadow the package under test.
cp -r "$S/test" "$S/testmime.py" "$S/testsample.py" "$S/testutils.py" \
    "$S/sample.py" run/
cp "$HERE/template.py" run/
cp src1.0/pymilter-1.0/testgrey.py run/
cp "$HERE/testcfg_local.py" run/
cd run
# testgrey 1.0's setUp removes test.db unconditionally.
: > test.db
"$PY" - ${*:-testmime testsample testutils testgrey testcfg_local} <<'PYEOF'
import importlib
import sys
import unittest

import milter, Milter, mime
where = (milter.__file__, Milter.__file__, mime.__file__)
print('testing', *where)
if any('/src1.' in w or '/run/' in w for w in where):
    sys.exit('run_suite: a downloaded pymilter shadows the package under test')

# Our TestCtx runs the milter in the real engine, which answers a callback's
# exception with the exception policy and prints the traceback (pymilter's
# test double let it propagate).  Count printed tracebacks as failures so
# neither implementation can pass by swallowing an error.
class Tee(object):
    def __init__(self, out):
        self.out, self.tracebacks = out, 0
    def write(self, s):
        self.tracebacks += s.count('Traceback (most recent call last)')
        return self.out.write(s)
    def __getattr__(self, name):
        return getattr(self.out, name)
sys.stderr = tee = Tee(sys.stderr)

passed = failed = 0
for name in sys.argv[1:]:
    mod = importlib.import_module(name)
    print('==', name)
    r = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(
        mod.suite())
    bad = len(r.failures) + len(r.errors) + len(r.unexpectedSuccesses)
    failed += bad
    passed += r.testsRun - bad - len(r.skipped)
    if r.skipped:
        # A skip would hide a failure: count it as one.
        failed += len(r.skipped)
if tee.tracebacks:
    print('tracebacks printed by callbacks:', tee.tracebacks)
    failed += tee.tracebacks
print('%d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
PYEOF
