#!/bin/sh
# The compatibility check: every public name of pymilter 1.0.5 (its sdist's
# Milter package and mime module, and its milter C module) and every
# documented method and export of Sendmail::PMilter 1.28 must exist in our
# Python package and Perl module (tests/compat/check_api.py), and
# pymilter's own doctests must give the same results on ours.  Then a
# control run: references with one made-up name added must fail, so the
# check cannot pass by not looking.
#
# The references are fetched where the other tests fetch them: the sdist
# with pip from PyPI (as tests/pymilter/run_suite.sh), pymilter's C module
# from the reference build (tests/pymilter/build_ref.sh, `make
# pymilter-ref`), Sendmail::PMilter 1.28 by perl/tools/fetch-pmilter-pp.sh
# into build/pmilter-pp (scripts/setup.d/40-pmilter-pp.sh).  Ours: the
# package installed in $PY's environment and perl/blib (built).
#   BUILD=build PY=build/venv/bin/python tests/compat/run.sh
# Last line: "N passed, M failed"; exit status nonzero on any failure.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PY=${PY:-$BUILD/venv/bin/python}
REFPY=${REFPY:-$BUILD/pymilter-ref-venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

"$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: pymilter==1.0.5 -d "$WORK/dl" 2>&1 |
    grep -v '^WARNING: Location' >&2 || true
tar xzf "$WORK/dl/pymilter-1.0.5.tar.gz" -C "$WORK"
SDIST=$WORK/pymilter-1.0.5
PPLIB=$(sh "$ROOT/perl/tools/fetch-pmilter-pp.sh" "$BUILD/pmilter-pp")
if [ ! -d "$ROOT/perl/blib" ]; then
    echo "compat: perl/blib is missing (cd perl && perl Makefile.PL && make)" >&2
    exit 1
fi

# From an empty directory, so that only the installed package is imported.
mkdir "$WORK/run"
cd "$WORK/run"
passed=0 failed=0
check() {
    if "$PY" "$HERE/check_api.py" --sdist "$1" --ref-python "$REFPY" \
        --pmilter-pp "$2" --perl "$ROOT/perl" > "$WORK/out" 2>&1
    then rc=0
    else rc=$?
    fi
    cat "$WORK/out"
}

echo "== names"
check "$SDIST" "$PPLIB"
if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "== pymilter's doctests on our modules"
if "$PY" "$HERE/ref_doctests.py" "$SDIST" "$REFPY"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi

echo "== control: a name only the references have must be reported"
cp -r "$SDIST" "$WORK/canary-sdist"
printf '\n\ndef pmcore_canary():\n    pass\n' >> "$WORK/canary-sdist/Milter/utils.py"
cp -r "$PPLIB" "$WORK/canary-pp"
printf '\n=pod\n\n=over 4\n\n=item $ctx->pmcore_canary()\n\n=back\n\n=cut\n' \
    >> "$WORK/canary-pp/Sendmail/PMilter/Context.pm"
check "$WORK/canary-sdist" "$WORK/canary-pp" > /dev/null
if [ "$rc" -eq 1 ] &&
   grep -q 'missing (pymilter 1.0.5): Milter.utils.pmcore_canary$' "$WORK/out" &&
   grep -q 'missing (Sendmail::PMilter .*): Sendmail::PMilter::Context->pmcore_canary$' "$WORK/out"
then
    echo "ok: both made-up names reported"
    passed=$((passed + 1))
else
    echo "FAIL: the control run did not report the made-up names (exit $rc):"
    cat "$WORK/out"
    failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
