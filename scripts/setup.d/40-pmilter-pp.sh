#!/usr/bin/env bash
# Pure-Perl Sendmail::PMilter 1.28 (Debian forky; bookworm's 1.00 as the
# fallback) in build/pmilter-pp/, never system-wide: the reference that
# perl/t/08_differential.t compares against and `make bench-perl` measures.
# Needs apt-get and dpkg-deb only; a no-op when it is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! sh perl/tools/fetch-pmilter-pp.sh build/pmilter-pp >/dev/null; then
    echo "setup: pure-Perl Sendmail::PMilter could not be fetched;" \
         "perl/t/08_differential.t needs it (see the messages above)" >&2
    exit 1
fi
if ! grep -q '^1\.2' build/pmilter-pp/VERSION; then
    echo "setup: only libsendmail-pmilter-perl $(cat build/pmilter-pp/VERSION)" \
         "could be fetched; perl/t/08_differential.t needs 1.27/1.28" >&2
    [ "${CI:-}" != true ] || exit 1
fi
