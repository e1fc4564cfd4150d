#!/usr/bin/env bash
# The C library as a user gets it from `make install`: staged with DESTDIR
# and PREFIX=/usr, found by pkg-config, a milter (examples/c/hello_milter.c)
# built against the staged copy, shared and static, and one conversation
# with it driven by the staged pmilter-test.  The shared library exports
# the public API and nothing else, and `make uninstall` removes every file
# install wrote and nothing more.
#
# usage: BUILD=build tests/install/c-library.sh   (from `make test`)
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
CC=${CC:-cc}
T=$(mktemp -d)
stage=$T/stage
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() {
    failed=$((failed + 1)); echo "not ok - $1"
    [ -s "$T/out" ] && sed 's/^/#   /' "$T/out" | head -40
    return 0
}
check() { # name command...: the command succeeds (its output in $T/out)
    local name=$1; shift
    if "$@" >"$T/out" 2>&1; then ok "$name"; else not_ok "$name"; fi
}
# This runs under `make test`: a sub-make of its own, without the parent's
# jobserver (the library is already built by then).
submake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make BUILD="$BUILD" "$@"; }

# Files that are not ours, which uninstall must leave alone.
mkdir -p "$stage/usr/include" "$stage/usr/lib/pkgconfig" "$stage/usr/bin"
echo '/* not pmcore */' >"$stage/usr/include/other.h"
echo 'Name: other' >"$stage/usr/lib/pkgconfig/other.pc"
echo 'not pmcore' >"$stage/usr/bin/other"
ours_before=$(cd "$stage" && find . ! -type d | sort)

check "make install DESTDIR PREFIX=/usr" \
    submake install DESTDIR="$stage" PREFIX=/usr
expected=$( {
    echo ./usr/include/pmcore.h
    for h in libpmcore/include/pmcore/*.h; do echo "./usr/include/pmcore/${h##*/}"; done
    version=$(sed -n 's/^#define PMC_VERSION_STRING "\(.*\)"/\1/p' \
        libpmcore/include/pmcore/base.h)
    printf './usr/lib/%s\n' libpmcore.a libpmcore.so libpmcore.so.0 \
        "libpmcore.so.$version" pkgconfig/pmcore.pc
    echo ./usr/bin/pmilter-test
    echo ./usr/share/man/man1/pmilter-test.1
    echo "$ours_before"
} | sort)
installed=$(cd "$stage" && find . ! -type d | sort)
if [ "$installed" = "$expected" ]; then ok "installed files: headers, libraries, pmcore.pc, pmilter-test and its man page"
else
    diff <(echo "$expected") <(echo "$installed") >"$T/out"
    not_ok "installed files (- wanted, + found)"
fi

lib=$stage/usr/lib
real=$(readlink -f "$lib/libpmcore.so")
check "libpmcore.so -> libpmcore.so.0 -> the library" \
    test "$(readlink "$lib/libpmcore.so")" = libpmcore.so.0 -a -f "$real" \
         -a "$(dirname "$real")" = "$(readlink -f "$lib")"
check "the shared library's soname is libpmcore.so.0" \
    sh -c "readelf -d '$real' | grep -q 'SONAME.*\[libpmcore.so.0\]'"

# nm -D lists the PMCORE_0 version node itself as an absolute symbol (type
# A); every other defined symbol must be public API under that node.
nm -D --defined-only "$real" | awk '{ print $2, $3 }' >"$T/dynsyms"
bad=$(awk '!($1 == "A" && $2 ~ /^PMCORE_[0-9]+$/) && $2 !~ /^pmc_[A-Za-z0-9_]+@@PMCORE_0$/' \
    "$T/dynsyms")
exported=$(grep -c '@@PMCORE_0$' "$T/dynsyms")
# The public API is what the static library leaves at default visibility
# (tests/check_symbols.sh checks those are pmc_ and the rest pmci_).
public=$(readelf -sW "$lib/libpmcore.a" |
         awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" && $6 == "DEFAULT" && NF >= 8 { print $8 }' |
         sort -u | grep -c .)
if [ -z "$bad" ] && [ "$exported" -gt 0 ] && [ "$exported" -eq "$public" ]; then
    ok "nm -D: only pmc_ symbols, all $exported public ones, versioned PMCORE_0"
else
    { echo "exported $exported, public in libpmcore.a $public; not allowed:"
      echo "$bad"; } >"$T/out"
    not_ok "nm -D: only the public pmc_ symbols"
fi

# pkg-config sees only the stage.  PREFIX=/usr puts the flags in the system
# directories, which pkg-config drops unless told to keep them.
export PKG_CONFIG_LIBDIR=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage \
       PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
check "pkg-config --modversion pmcore is the header's version" \
    test "$(pkg-config --modversion pmcore)" = "$(basename "$real" | sed 's/^libpmcore\.so\.//')"
# (echo without quotes: pkgconf ends its output with a blank.)
# shellcheck disable=SC2046,SC2116
cflags=$(echo $(pkg-config --cflags pmcore)) libs=$(echo $(pkg-config --libs pmcore))
check "pkg-config points into the stage" \
    test "$cflags" = "-I$stage/usr/include" -a "$libs" = "-L$lib -lpmcore"

# shellcheck disable=SC2086
check "examples/c/hello_milter.c builds with pkg-config's flags" \
    $CC -std=c11 -Wall -Wextra -Werror $cflags examples/c/hello_milter.c $libs \
        -o "$T/hello"
check "the milter needs libpmcore.so.0" \
    sh -c "readelf -d '$T/hello' | grep -q 'NEEDED.*\[libpmcore.so.0\]'"
# shellcheck disable=SC2086
check "and links the static library too" \
    $CC -std=c11 -Wall -Wextra -Werror $cflags examples/c/hello_milter.c \
        "$lib/libpmcore.a" $(pkg-config --static --libs-only-other pmcore) \
        -o "$T/hello-static"
check "the static milter needs no libpmcore.so" \
    sh -c "! readelf -d '$T/hello-static' | grep -q libpmcore"

# converse NAME MILTER [ENV...]: start the milter on a unix socket, have the
# staged pmilter-test play Postfix against it, stop it with SIGTERM.
converse() {
    local name=$1 milter=$2; shift 2
    local sock=$T/$name.sock
    env "$@" "$milter" "unix:$sock" 2>"$T/$name.log" &
    pid=$!
    for _ in $(seq 1 200); do [ -S "$sock" ] && break; sleep 0.05; done
    if [ ! -S "$sock" ]; then
        cp "$T/$name.log" "$T/out"
        not_ok "$name milter: its socket never appeared"; kill "$pid"; pid=; return
    fi
    if [ "$name" = shared ]; then
        check "the running milter loaded the staged libpmcore.so.0" \
            grep -qF "$real" "/proc/$pid/maps"
    fi
    # The socket file exists from bind(), a moment before listen(): retry
    # while pmilter-test says it cannot connect (exit 5).  A conversation
    # that ran also means the milter's signal handlers are in place.
    local status
    for _ in $(seq 1 100); do
        "$stage/usr/bin/pmilter-test" -r bob@example.com -r nobody@example.com \
            "unix:$sock" tests/cli/files/plain.eml >"$T/out" 2>&1
        status=$?
        [ "$status" -ne 5 ] && break
        sleep 0.05
    done
    if [ "$status" -eq 0 ] &&
        grep -qF '<- ADDHEADER   X-Hello: world' "$T/out" &&
        grep -qF '<- REPLYCODE   550 5.1.1 No such user here' "$T/out" &&
        grep -qF '== result: accepted, exit status 0' "$T/out"; then
        ok "$name milter: staged pmilter-test adds the header, refuses nobody@"
    else
        sed 's/^/milter: /' "$T/$name.log" >>"$T/out"
        not_ok "$name milter: conversation (pmilter-test exit $status)"
    fi
    kill -TERM "$pid"
    wait "$pid"
    status=$? pid=
    check "$name milter: SIGTERM ends it cleanly" test "$status" -eq 0
}
converse shared "$T/hello" LD_LIBRARY_PATH="$lib"
converse static "$T/hello-static"
check "the man page is pmilter-test(1)" \
    grep -q '^\.TH PMILTER-TEST 1' "$stage/usr/share/man/man1/pmilter-test.1"

check "make uninstall with the same DESTDIR and PREFIX" \
    submake uninstall DESTDIR="$stage" PREFIX=/usr
left=$(cd "$stage" && find . ! -type d | sort)
if [ "$left" = "$ours_before" ]; then ok "uninstall removes every file it installed, and no other"
else
    diff <(echo "$ours_before") <(echo "$left") >"$T/out"
    not_ok "uninstall leaves (- wanted, + found)"
fi
check "uninstall removes include/pmcore/" test ! -e "$stage/usr/include/pmcore"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
