#!/usr/bin/env bash
# The hostile-peer suite (tests/hostile/README.md): the C, Perl and Python
# example milters as child processes, attacked over 127.0.0.1 and unix
# sockets.  Run by `make test` once the bindings are built (perl/blib,
# build/venv); `make test-hostile` builds them itself.
#   tests/hostile/run.sh [pytest arguments]
#   HOSTILE_FULL=1 tests/hostile/run.sh        the brief's full counts
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${HOSTILE_PY:-$BUILD/venv/bin/python}

missing=
[ -x "$BUILD/examples/hello_milter" ] || missing="$BUILD/examples/hello_milter (make $BUILD/examples/hello_milter)"
[ -d perl/blib/arch ] || missing="the Perl binding (cd perl && perl Makefile.PL && make)"
"$PY" -c 'import milter, pytest' 2>/dev/null ||
    missing="the Python binding and pytest in $PY (make test builds them)"
if [ -n "$missing" ]; then
    if [ -n "${CI:-}" ]; then
        echo "hostile: cannot run: needs $missing" >&2
        exit 1
    fi
    echo "hostile: not run: needs $missing"
    exit 0
fi

case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
case $PY in /*) ;; *) PY=$PWD/$PY ;; esac
export HOSTILE_BUILD=$BUILD HOSTILE_PY=$PY
exec "$PY" -m pytest -q -rxXs -p no:cacheprovider tests/hostile "$@"
