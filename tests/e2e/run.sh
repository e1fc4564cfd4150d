#!/usr/bin/env bash
# The end-to-end suite: the Perl and Python test milters behind a private
# Postfix, and the C, Perl and Python ones behind a private Sendmail
# (tests/e2e/README.md).  Run by `make test` once the bindings are
# built (perl/blib, build/venv); needs root and Debian's postfix
# (scripts/setup.d/30-postfix.sh installs it).
#   tests/e2e/run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${E2E_PY:-build/venv/bin/python}
export PATH="$PATH:/usr/sbin:/sbin"

missing=
[ "$(id -u)" -eq 0 ] || missing="root (Postfix's master runs as root)"
command -v postfix >/dev/null || missing="postfix (./scripts/setup.sh installs it)"
command -v haproxy >/dev/null || missing="haproxy (./scripts/setup.sh installs it)"
[ -x "${BUILD:-build}/examples/hello_milter" ] ||
    missing="the C example (make ${BUILD:-build}/examples/hello_milter)"
[ -d perl/blib/arch ] || missing="the Perl binding (cd perl && perl Makefile.PL && make)"
"$PY" -c 'import milter, pytest' 2>/dev/null ||
    missing="the Python binding and pytest in $PY (make test builds them)"
if [ -n "$missing" ]; then
    # CI has everything; elsewhere say plainly that nothing ran, and why.
    if [ -n "${CI:-}" ]; then
        echo "e2e: cannot run: needs $missing" >&2
        exit 1
    fi
    echo "e2e: not run: needs $missing"
    exit 0
fi

root=$(mktemp -d /tmp/pmcore-e2e.XXXXXX)
export E2E_ROOT=$root
# The fixtures stop everything; this is for a run that was killed.
cleanup() {
    # The main instance, test_published.py's under published/ and the
    # pool's (test_pool.py) under pool/.
    for conf in "$root/conf" "$root/published/conf" "$root/pool/conf"; do
        [ -f "$conf/main.cf" ] || continue
        postfix -c "$conf" stop >/dev/null 2>&1 ||
            postfix -c "$conf" abort >/dev/null 2>&1 || true
    done
    # Sendmail (test_sendmail.py) leads its own process group too.
    if [ -f "$root/sendmail/sendmail.pid" ]; then
        kill -KILL -- "-$(head -n1 "$root/sendmail/sendmail.pid")" 2>/dev/null || true
    fi
    # Each milter (and HAProxy) leads its own process group (with its
    # workers).
    for pidfile in "$root"/ctl/*/milter.pid "$root"/published/ctl/*/milter.pid \
                   "$root"/pool/ctl/*/milter.pid "$root"/pool/haproxy.pid; do
        [ -f "$pidfile" ] || continue
        kill -KILL -- "-$(cat "$pidfile")" 2>/dev/null || true
    done
    [ -n "${E2E_KEEP:-}" ] && echo "e2e: kept $root" || rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$PY" -m pytest -q -rxXs -p no:cacheprovider tests/e2e "$@"
