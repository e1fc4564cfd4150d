#!/bin/sh
# Copy libpmcore into a binding's source tree, so a CPAN tarball or a Python
# sdist builds on its own, without the pmcore repository.  Both bindings
# call this one script: the Perl dist targets (perl/Makefile.PL) and the
# Python build (python/setup.py).
#
# usage: scripts/vendor-core.sh [--vectors DIR] [--manifest FILE] DEST
#
#   DEST             replaced by a fresh copy: DEST/include/pmcore.h,
#                    DEST/include/pmcore/*.h, DEST/src/<layer>/*.[ch], and
#                    DEST/CORE_VERSION naming the commit the copy came from
#   --vectors DIR    also copy tests/vectors/* into DIR (the Perl tests read
#                    them from t/vectors in a tarball)
#   --manifest FILE  append every file written, relative to FILE's folder,
#                    to FILE (a CPAN MANIFEST)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORE=$ROOT/libpmcore

vectors= manifest=
while [ $# -gt 1 ]; do
    case $1 in
    --vectors) vectors=$2; shift 2 ;;
    --manifest) manifest=$2; shift 2 ;;
    *) break ;;
    esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--vectors DIR] [--manifest FILE] DEST" >&2; exit 2; }
DEST=$1
[ -f "$CORE/include/pmcore.h" ] || { echo "$0: no libpmcore at $CORE" >&2; exit 1; }
mkdir -p "$DEST"
# DEST is emptied first, so a core file removed upstream leaves the copy.
case $(cd "$DEST" && pwd -P) in
"$(cd "$CORE" && pwd -P)" | "$(cd "$ROOT" && pwd -P)" | /)
    echo "$0: refusing to replace $DEST" >&2
    exit 1 ;;
esac
rm -rf "$DEST"
written=$(mktemp)
trap 'rm -f "$written"' EXIT

copy() { # FILE TARGET-DIR
    mkdir -p "$2"
    cp "$1" "$2/"
    echo "$2/${1##*/}" >>"$written"
}
# The layers are folders under src/ (proto, client, server); the public
# header is include/pmcore.h with its parts in include/pmcore/.
for f in "$CORE"/include/*.h "$CORE"/include/pmcore/*.h "$CORE"/src/*/*.[ch]; do
    [ -f "$f" ] || continue
    rel=${f#"$CORE"/}
    copy "$f" "$DEST/$(dirname "$rel")"
done
if [ -n "$vectors" ]; then
    for f in "$ROOT"/tests/vectors/*; do
        [ -f "$f" ] && copy "$f" "$vectors"
    done
fi

# Which core the copy is: the version in the header, the commit, and
# whether libpmcore/ differed from that commit.  Outside a git checkout
# (a tarball of the repository) the commit is unknown, not an error.
version=$(sed -n 's/^#define PMC_VERSION_STRING "\(.*\)"/\1/p' \
    "$CORE/include/pmcore/base.h")
commit=unknown describe=unknown tree=unknown
if command -v git >/dev/null 2>&1 &&
    c=$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null); then
    commit=$c
    describe=$(git -C "$ROOT" describe --tags --always 2>/dev/null || echo "$c")
    if [ -z "$(git -C "$ROOT" status --porcelain -- libpmcore 2>/dev/null)" ]; then
        tree=clean
    else
        tree=modified
    fi
fi
{
    echo "# The libpmcore sources in this folder, written by scripts/vendor-core.sh."
    echo "# tree: whether libpmcore/ had uncommitted changes when copied."
    echo "version $version"
    echo "commit $commit"
    echo "describe $describe"
    echo "tree $tree"
} >"$DEST/CORE_VERSION"
echo "$DEST/CORE_VERSION" >>"$written"

if [ -n "$manifest" ]; then
    # DEST and DIR must be given under the manifest's folder, as it is.
    awk -v base="$(dirname "$manifest")/" '
        index($0, base) != 1 { print "vendor-core: " $0 " is not under " base > "/dev/stderr"; bad = 1; next }
        { print substr($0, length(base) + 1) }
        END { exit bad }' "$written" >>"$manifest"
fi
