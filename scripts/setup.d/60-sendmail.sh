#!/usr/bin/env bash
# Sendmail for the end-to-end suite (tests/e2e/test_sendmail.py), never
# installed: `apt-get install sendmail-bin` would remove Postfix (both are a
# mail-transport-agent).  Debian's sendmail-bin and sendmail-cf are
# downloaded and unpacked with dpkg-deb -x into build/sendmail/; only their
# libraries and m4, which displace nothing, are installed.  The private
# binary loses its setgid bit, so the loader behaves as for any program.
# A no-op when build/sendmail/ already holds them.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/apt-need.sh m4 libwrap0 liblockfile1

dir=$PWD/build/sendmail
bin=$dir/usr/libexec/sendmail/sendmail
[ -x "$bin" ] && [ -f "$dir/usr/share/sendmail/cf/m4/cf.m4" ] && exit 0

debs=$dir/debs
rm -rf "$dir" && mkdir -p "$debs"
# apt-get download writes as user _apt where it can: let it.
chmod 777 "$debs"
get() { (cd "$debs" && apt-get download -q sendmail-bin sendmail-cf); }
if ! get >"$dir/fetch.log" 2>&1; then
    # An old or empty package list: refresh it once.
    apt-get update -q >>"$dir/fetch.log" 2>&1 || true
    get >>"$dir/fetch.log" 2>&1 || {
        cat "$dir/fetch.log" >&2
        echo "setup: cannot download sendmail-bin and sendmail-cf" >&2
        exit 1
    }
fi
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
chmod g-s "$bin"
dpkg-deb -f "$debs"/sendmail-bin_*.deb Version > "$dir/VERSION"
# (Running it here would wait 60 s on this host's unqualified name: the
# suite gives it a private one.)
if ldd "$bin" | grep 'not found' >&2; then
    echo "setup: the unpacked sendmail lacks the libraries above" >&2
    exit 1
fi
echo "setup: sendmail $(cat "$dir/VERSION") unpacked in build/sendmail"
