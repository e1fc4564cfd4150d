#!/usr/bin/env bash
# Published milters for the end-to-end suite (tests/e2e/test_published.py),
# each run unchanged on pmcore's bindings, all under build/published/:
#   py/      dkimpy-milter and spf-engine (pyspf-milter) from PyPI at pinned
#            versions with their pure-Python dependencies, installed with
#            --no-deps --target: never pymilter, whose `milter` and `Milter`
#            pmcore provides (the suite puts py/ on PYTHONPATH of build/venv);
#   pymilter-1.0.5/sample.py   from pymilter's sdist;
#   perl/    Debian's libmail-milter-perl (Mail::Milter 0.07), unpacked with
#            dpkg-deb -x, never installed (its dependency would bring the
#            pure-Perl Sendmail::PMilter system-wide).
# A no-op when build/published/VERSIONS matches the pins below.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/apt-need.sh openssl

dir=$PWD/build/published
PY_PINS=(dkimpy-milter==1.2.3 dkimpy==1.1.8 authres==1.2.0 dnspython==2.7.0
         spf-engine==3.1.0 pyspf==2.0.14)
PYMILTER=pymilter==1.0.5
DEB=libmail-milter-perl
want="${PY_PINS[*]} $PYMILTER $DEB"
[ -f "$dir/VERSIONS" ] && [ "$(head -n1 "$dir/VERSIONS")" = "$want" ] && exit 0

rm -rf "$dir" && mkdir -p "$dir/debs"
log=$dir/setup.log
fail() { cat "$log" >&2; echo "setup: $*" >&2; exit 1; }
python3 -m venv "$dir/pip-venv" >>"$log" 2>&1 || fail "python3 -m venv failed"
pip=("$dir/pip-venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --no-deps --target "$dir/py" "${PY_PINS[@]}" >>"$log" 2>&1 ||
    fail "pip could not install ${PY_PINS[*]}"
"${pip[@]}" download --no-deps --no-binary :all: -d "$dir" "$PYMILTER" \
    >>"$log" 2>&1 || fail "pip could not download the $PYMILTER sdist"
tar -xzf "$dir"/pymilter-1.0.5.tar.gz -C "$dir" pymilter-1.0.5/sample.py
chmod 777 "$dir/debs"  # apt-get download writes as user _apt
get() { (cd "$dir/debs" && apt-get download -q "$DEB"); }
if ! get >>"$log" 2>&1; then
    apt-get update -q >>"$log" 2>&1 || true
    get >>"$log" 2>&1 || fail "cannot download $DEB"
fi
dpkg-deb -x "$dir"/debs/${DEB}_*.deb "$dir/perl"
{ echo "$want"; dpkg-deb -f "$dir"/debs/${DEB}_*.deb Package Version; } > "$dir/VERSIONS"
rm -rf "$dir/pip-venv"
echo "setup: published milters in build/published ($want)"
