#!/usr/bin/env bash
# The README's Perl install, `cpanm ./perl`, into a private library: it must
# build the XS module with the core inside and load it from there, with no
# CPAN access (the distribution needs nothing beyond core Perl).
set -uo pipefail
cd "$(dirname "$0")/../.."
lib=$(mktemp -d)
trap 'rm -rf "$lib"' EXIT
passed=0 failed=0
check() { # name command...
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok - $name"
    else failed=$((failed + 1)); echo "not ok - $name"; fi
}
check "cpanm ./perl installs" \
    cpanm --notest --quiet --no-interactive -L "$lib" ./perl
arch=$(perl -MConfig -e 'print $Config{archname}')
export PERL5LIB=$lib/lib/perl5:$lib/lib/perl5/$arch
check "the installed module loads from the private library" \
    perl -MSendmail::PMilter -e '
        exit 1 unless $INC{"Sendmail/PMilter.pm"} =~ m{^\Q'"$lib"'\E};
        exit 1 unless $Sendmail::PMilter::VERSION >= 1.28;
        exit 1 unless Sendmail::PMilter->can("main");'
check "the installed module has its XS part" \
    test -n "$(find "$lib" -name PMilter.so -print -quit)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
