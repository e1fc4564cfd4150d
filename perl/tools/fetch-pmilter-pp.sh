#!/bin/sh
# Fetch pure-Perl Sendmail::PMilter into DIR (default: build/pmilter-pp at
# the top of the repository), never system-wide: the reference for
# t/08_differential.t and `make bench-perl`.
#
# Debian's libsendmail-pmilter-perl 1.28 (suite forky) is downloaded with
# `apt-get download` through a private sources list that uses the mirror
# and keyring of the machine's own Debian sources, and unpacked with
# `dpkg-deb -x` into DIR (so the modules land in DIR/usr/share/perl5).  If
# forky cannot be reached, bookworm's 1.00 is fetched the same way.  DIR/VERSION
# records the package version.  Prints the library directory (for
# PMILTER_PP_LIB).  Exits non-zero, saying why, when nothing could be
# fetched.  Usage: tools/fetch-pmilter-pp.sh [--force] [DIR]
set -eu
force=
[ "${1:-}" = --force ] && { force=1; shift; }
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$top/build/pmilter-pp}
# apt reads a relative Dir:: path from /etc/apt: make it absolute.
case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac
pkg=libsendmail-pmilter-perl
lib=$dir/usr/share/perl5

# A fallback copy (1.00) is fetched again: forky may be back.
if [ -z "$force" ] && [ -f "$lib/Sendmail/PMilter.pm" ] &&
   grep -q '^1\.2' "$dir/VERSION" 2>/dev/null; then
    echo "$lib"
    exit 0
fi

# The main Debian archive of the machine's own sources (deb822 files and
# one-line sources.list alike): its URI and the keyring it is signed with.
# Security and update archives do not carry other suites.
sources() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             { uri = ""; key = ""; deb = 0
               for (i = 1; i <= NF; i++) {
                   if ($i ~ /^#/) continue
                   if ($i ~ /^Types:.*(^|[ \t])deb([ \t]|$)/) deb = 1
                   if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
                   if ($i ~ /^Signed-By:/) { split($i, a, /[ \t]+/); key = a[2] }
               }
               if (deb && uri != "") print uri, key }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n 's/^deb[ \t]\{1,\}\(\[\([^]]*\)\][ \t]\{1,\}\)\{0,1\}\([^ \t]*\).*/\3 \2/p' "$f" |
            awk '{ key = ""
                   for (i = 2; i <= NF; i++) if ($i ~ /^signed-by=/) key = substr($i, 11)
                   print $1, key }'
    done
}
line=$(sources | grep -v -e security -e '^[^ ]*-updates' | grep -i '/debian/\{0,1\} ' | head -n1 || true)
mirror=${line%% *}
keyring=${line#* }
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
if [ -z "$keyring" ] || [ "$keyring" = "$line" ] || [ ! -f "$keyring" ]; then
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
fi

apt=$dir/apt
log=$dir/fetch.log
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
: > "$log"

# fetch SUITE: download the package of SUITE into $apt/deb.
fetch() {
    printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$1" > "$apt/sources.list"
    rm -rf "$apt/deb" && mkdir -p "$apt/deb"
    set -- -o Dir::Etc::sourcelist="$apt/sources.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" \
        -o APT::Get::List-Cleanup=0
    apt-get "$@" update >> "$log" 2>&1 &&
        (cd "$apt/deb" && apt-get "$@" download "$pkg") >> "$log" 2>&1
}

if fetch forky; then
    suite=forky
elif fetch bookworm; then
    suite=bookworm
    echo "fetch-pmilter-pp: forky unreachable, fell back to bookworm's $pkg" >&2
else
    echo "fetch-pmilter-pp: cannot download $pkg from $mirror (forky, then bookworm):" >&2
    sed 's/^/  /' "$log" >&2
    exit 1
fi
deb=$(ls "$apt/deb/${pkg}_"*_all.deb)
rm -rf "$dir/usr"
dpkg-deb -x "$deb" "$dir"
dpkg-deb -f "$deb" Version > "$dir/VERSION"
[ -f "$lib/Sendmail/PMilter.pm" ] || {
    echo "fetch-pmilter-pp: $deb has no Sendmail/PMilter.pm" >&2
    exit 1
}
echo "fetch-pmilter-pp: $pkg $(cat "$dir/VERSION") ($suite) in $dir" >&2
echo "$lib"
