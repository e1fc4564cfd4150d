#!/usr/bin/env bash
# The wheels of `make wheels` as a user gets them: each installed from its
# file alone (no index, no sdist fallback) into a clean venv of its own
# CPython, with every compiler replaced by a shim that records the call and
# CC/CXX/LDSHARED set to /bin/false, so a wheel that needed building would
# fail here.  Then, with that venv only, examples/python/header_adder.py
# serves a unix socket and pmilter-test plays Postfix against it: the
# headers it promises must come back.  Every CPython 3.8-3.13 on the machine
# must have its wheel.  Run by `make test` (after `make wheels`).
#   tests/wheels/run.sh [PMILTER-TEST]      (BUILD=build by default)
# Last line: "N passed, M failed"; exit status nonzero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PMT=$(realpath "${1:-$BUILD/bin/pmilter-test}")
WHEELS=$BUILD/wheels
T=$(mktemp -d "${TMPDIR:-/tmp}/pmcore-wheels.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$T"
}
trap cleanup EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
notok() { failed=$((failed + 1)); echo "not ok - $*"; }

# No compiler on PATH: each name a build would try runs a shim that logs.
mkdir "$T/nocc"
for c in cc gcc g++ c++ clang clang++ ld x86_64-linux-gnu-gcc \
         x86_64-linux-gnu-g++; do
    printf '#!/bin/sh\necho "$0 $*" >>%s/compiler-calls\nexit 1\n' "$T" \
        >"$T/nocc/$c"
    chmod +x "$T/nocc/$c"
done
nocc() { # VENV CMD...: run CMD with only the venv, the shims and the system
    local venv=$1
    shift
    env PATH="$T/nocc:$venv/bin:/usr/bin:/bin" CC=/bin/false CXX=/bin/false \
        LDSHARED=/bin/false PYTHONNOUSERSITE=1 "$@"
}

# converse VER VENV: the sample milter from the venv, driven by pmilter-test.
converse() {
    local ver=$1 venv=$2 sock=$T/$1.sock out=$T/$1.out i rc=0
    (cd "$T" && exec env PATH="$T/nocc:$venv/bin:/usr/bin:/bin" \
        "$venv/bin/python" "$ROOT/examples/python/header_adder.py" \
        "unix:$sock") >"$T/$ver.milter.log" 2>&1 &
    pid=$!
    for i in $(seq 1 100); do
        [ -S "$sock" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -S "$sock" ]; then
        notok "CPython $ver: the sample milter did not listen"
        sed 's/^/    /' "$T/$ver.milter.log"
        pid=
        return
    fi
    "$PMT" --postfix "unix:$sock" tests/cli/files/plain.eml >"$out" 2>&1 ||
        rc=$?
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
    if [ "$rc" -eq 0 ] &&
       grep -q 'ADDHEADER *X-Filtered-By: header_adder' "$out" &&
       grep -q 'ADDHEADER *X-Client-Addr: 192.0.2.10' "$out"; then
        ok "CPython $ver: header_adder served a Postfix conversation"
    else
        notok "CPython $ver: conversation (pmilter-test exit $rc)"
        sed 's/^/    /' "$out" "$T/$ver.milter.log"
    fi
}

shopt -s nullglob
while read -r ver py; do
    [ "$py" = - ] && { echo "# CPython $ver: not installed here"; continue; }
    tag=cp${ver/./}
    whl=("$WHEELS"/*-"$tag"-"$tag"-manylinux*.whl)
    if [ "${#whl[@]}" -ne 1 ]; then
        notok "CPython $ver: one manylinux wheel for $tag in $WHEELS" \
              "(found ${#whl[@]}; make wheels)"
        continue
    fi
    venv=$T/venv-$ver
    rm -f "$T/compiler-calls"
    if ! "$py" -m venv "$venv" >"$T/$ver.log" 2>&1 ||
       ! nocc "$venv" "$venv/bin/python" -m pip install --no-index \
            --no-deps --only-binary :all: --disable-pip-version-check \
            "${whl[0]}" >>"$T/$ver.log" 2>&1; then
        notok "CPython $ver: $(basename "${whl[0]}") installs"
        sed 's/^/    /' "$T/$ver.log"
        continue
    fi
    ok "CPython $ver: $(basename "${whl[0]}") installs"
    if [ -s "$T/compiler-calls" ]; then
        notok "CPython $ver: no compiler was called"
        sed 's/^/    /' "$T/compiler-calls"
    else
        ok "CPython $ver: no compiler was called"
    fi
    # The extension and the packages come from the venv, not the tree.
    if (cd "$T" && nocc "$venv" "$venv/bin/python" -c '
import sys, milter, Milter, mime
for m in (milter, Milter, mime):
    assert m.__file__.startswith(sys.prefix), m.__file__
assert milter.__file__.endswith(".so"), milter.__file__
') >"$T/$ver.import" 2>&1; then
        ok "CPython $ver: milter, Milter and mime import from the venv"
    else
        notok "CPython $ver: milter, Milter and mime import from the venv"
        sed 's/^/    /' "$T/$ver.import"
    fi
    converse "$ver" "$venv"
done < <(scripts/find-pythons.sh)

[ $((passed + failed)) -gt 0 ] || notok "no CPython 3.8-3.13 found"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
