#!/bin/sh
# Fetch pure-Perl Sendmail::PMilter 1.28 (Debian's libsendmail-pmilter-perl
# from suite forky) into a private folder, never system-wide, for
# t/08_differential.t.  Prints the library directory to put in
# PMILTER_PP_LIB.  Usage: tools/fetch-pmilter-pp.sh [DIR]
set -eu
dir=${1:-/tmp/pmilter-pp}
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror forky main" > "$dir/sources.list"
opts="-o Dir::Etc::sourcelist=$dir/sources.list -o Dir::Etc::sourceparts=- -o Dir::State::Lists=$dir/lists -o Dir::Cache=$dir/cache -o APT::Get::List-Cleanup=0"
apt-get $opts update >/dev/null
(cd "$dir" && apt-get $opts download libsendmail-pmilter-perl >/dev/null 2>&1)
dpkg-deb -x "$dir"/libsendmail-pmilter-perl_*_all.deb "$dir/root"
echo "$dir/root/usr/share/perl5"
