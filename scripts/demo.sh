#!/usr/bin/env bash
# The README's demo: build the Perl and Python bindings, start the sample
# Perl milter and the sample Python milter on unix sockets in a temporary
# directory, and have pmilter-test play Postfix against each, printing the
# transcripts.  The milters are always stopped; any failure (a build, a
# milter that does not come up, a conversation that does not go as the
# sample promises) makes the script exit nonzero.
#
# usage: scripts/demo.sh PMILTER-TEST      (make demo runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PMT=$(realpath "${1:-build/bin/pmilter-test}")
BUILD=${BUILD:-build}
PY=${PY:-python3}
VENV=$ROOT/$BUILD/venv
LOGS=$ROOT/$BUILD/demo
mkdir -p "$LOGS"

step() { printf '\n#### %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# A failed step shows its log, so the reason is on the screen.
quietly() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "failed: $* (log: $log)"
    fi
}

step "building the Perl binding (perl/, Sendmail::PMilter on libpmcore)"
quietly "$LOGS/perl-build.log" \
    sh -c 'cd perl && perl Makefile.PL && make'
echo "built perl/blib"

step "building the Python binding into $BUILD/venv (pip install ./python)"
[ -x "$VENV/bin/python" ] ||
    quietly "$LOGS/venv.log" "$PY" -m venv "$VENV"
# Rebuild only when the sources changed since the last demo install.
stamp=$(cat python/pyproject.toml python/setup.py \
            $(find python/src python/Milter libpmcore -type f \
                   \( -name '*.c' -o -name '*.h' -o -name '*.py' \) | sort) \
        | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.demo-stamp" 2>/dev/null)" != "$stamp" ] ||
   ! "$VENV/bin/python" -c 'import Milter' 2>/dev/null; then
    rm -rf python/build
    # As python/run_tests.sh: the venv's own setuptools when it is recent
    # enough, otherwise pip fetches the build requirements from PyPI.
    iso=()
    "$VENV/bin/python" -c 'import setuptools, wheel, sys
sys.exit(int(setuptools.__version__.split(".")[0]) < 61)' 2>/dev/null &&
        iso=(--no-build-isolation)
    quietly "$LOGS/python-build.log" "$VENV/bin/python" -m pip install \
        --disable-pip-version-check "${iso[@]}" --force-reinstall --no-deps \
        ./python
    echo "$stamp" >"$VENV/.demo-stamp"
fi
echo "installed $("$VENV/bin/python" -c 'import Milter; print(Milter.__file__)')"

T=$(mktemp -d "${TMPDIR:-/tmp}/pmcore-demo.XXXXXX")
pids=()
stop_milters() {
    local p i
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    # A milter drains on SIGTERM; give it a moment, then insist.
    for p in "${pids[@]}"; do
        for i in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}
trap 'stop_milters; rm -rf "$T"' EXIT

# start NAME LOG CMD...: run a milter in the background and wait until its
# socket exists ($T/NAME.sock), failing if it dies first.
start() {
    local name=$1 log=$2 i
    shift 2
    "$@" >"$log" 2>&1 &
    pids+=($!)
    for i in $(seq 1 100); do
        [ -S "$T/$name.sock" ] && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || {
            cat "$log" >&2
            die "the $name milter exited before listening"
        }
        sleep 0.1
    done
    cat "$log" >&2
    die "the $name milter did not listen on $T/$name.sock within 10 s"
}

# converse NAME SCRIPT WANT...: pmilter-test plays Postfix; the transcript
# must hold every WANT string (what the sample milter promises to do).
converse() {
    local name=$1 script=$2 out=$T/$1.out rc=0 w
    shift 2
    "$PMT" --postfix --script "$script" "unix:$T/$name.sock" | tee "$out" ||
        rc=$?
    [ "$rc" -eq 0 ] || die "pmilter-test exited with status $rc for $name"
    for w in "$@"; do
        grep -qF -- "$w" "$out" ||
            die "the $name milter's transcript lacks '$w'"
    done
}

step "Perl: examples/perl/header-milter.pl on unix:$T/perl.sock"
start perl "$LOGS/perl-milter.log" \
    perl -I"$ROOT/perl/blib/lib" -I"$ROOT/perl/blib/arch" \
    examples/perl/header-milter.pl "unix:$T/perl.sock"
converse perl examples/demo/perl.script \
    "<- ADDHEADER   X-Header-Milter: checked <alice@example.org> from mail.example.org" \
    "<- ADDHEADER   X-Header-Milter: checked <carol@example.org> from mail.example.org" \
    "== message 2: accepted at EOM"

step "Python: examples/python/recipient_check.py on unix:$T/python.sock"
start python "$LOGS/python-milter.log" \
    "$VENV/bin/python" examples/python/recipient_check.py \
    "unix:$T/python.sock"
converse python examples/demo/python.script \
    "<- REPLYCODE   550 5.7.1 relaying to elsewhere.example.net denied" \
    "<- ADDHEADER   X-Local-Recipients: 1" \
    "== message 1: accepted at EOM"

stop_milters
step "demo passed: each sample milter served a Postfix conversation over its socket"
