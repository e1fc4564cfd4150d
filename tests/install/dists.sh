#!/usr/bin/env bash
# The two distributions as they leave the repository: the CPAN tarball
# (`make dist` in perl/) and the Python sdist.  Each carries the licence,
# the whole core as scripts/vendor-core.sh copies it, and CORE_VERSION
# naming the commit it came from; each builds away from the repository;
# their metadata names the licence.
#
# usage: PY=build/venv/bin/python tests/install/dists.sh   (from `make test`)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PY:-python3}
case $PY in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() {
    failed=$((failed + 1)); echo "not ok - $1"
    [ -s "$T/out" ] && sed 's/^/#   /' "$T/out" | tail -30
    return 0
}
check() { # name command...: the command succeeds (its output in $T/out)
    local name=$1; shift
    if "$@" >"$T/out" 2>&1; then ok "$name"; else not_ok "$name"; fi
}
# Sub-makes of our own, without the parent's jobserver.
nomake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "$@"; }

# What every copy of the core must hold: the public headers and the
# sources of each layer, as paths under the core's folder.
(cd libpmcore && ls include/*.h include/pmcore/*.h src/*/*.[ch]) | sort >"$T/core.files"
commit=$(git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)

# core_copy NAME DIR: DIR holds exactly the core's files, unchanged, and a
# CORE_VERSION naming this commit.
core_copy() {
    local name=$1 dir=$2
    (cd "$dir" && find include src -type f | sort) >"$T/copy.files"
    if diff "$T/core.files" "$T/copy.files" >"$T/out" &&
        while read -r f; do cmp -s "libpmcore/$f" "$dir/$f" || { echo "differs: $f"; exit 1; }; done \
            <"$T/core.files" >"$T/out"; then
        ok "$name: the core's $(wc -l <"$T/core.files") headers and sources, unchanged"
    else
        not_ok "$name: the core's files (- repository, + copy)"
    fi
    if grep -qx "commit $commit" "$dir/CORE_VERSION" &&
        grep -qx "version $(sed -n 's/^#define PMC_VERSION_STRING "\(.*\)"/\1/p' \
            libpmcore/include/pmcore/base.h)" "$dir/CORE_VERSION"; then
        ok "$name: CORE_VERSION names commit $commit"
    else
        cp "$dir/CORE_VERSION" "$T/out" 2>/dev/null
        not_ok "$name: CORE_VERSION names commit $commit"
    fi
}

check "LICENSE is the same in perl/ and python/" \
    sh -c 'cmp LICENSE perl/LICENSE && cmp LICENSE python/LICENSE &&
           grep -q "BSD 2-Clause License" LICENSE'

# --- Perl: make dist ---------------------------------------------------------
rm -f perl/Sendmail-PMilter-*.tar.gz
if nomake sh -c 'cd perl && perl Makefile.PL && make dist' >"$T/out" 2>&1; then
    ok "perl: make dist"
    mv perl/Sendmail-PMilter-*.tar.gz "$T/"
else
    not_ok "perl: make dist"
fi
tarball=$(ls "$T"/Sendmail-PMilter-*.tar.gz 2>/dev/null | head -n 1)
if [ -n "$tarball" ]; then
    mkdir "$T/perl" && tar xzf "$tarball" -C "$T/perl"
    pd=$(ls -d "$T"/perl/Sendmail-PMilter-*)
    check "perl: the tarball's LICENSE is the repository's" cmp LICENSE "$pd/LICENSE"
    core_copy "perl" "$pd/libpmcore"
    check "perl: the tarball carries every vector" \
        diff <(cd tests/vectors && ls) <(cd "$pd/t/vectors" && ls)
    check "perl: its MANIFEST lists LICENSE, the core and the vectors" \
        sh -c "cd '$pd' && perl -MExtUtils::Manifest=manicheck,filecheck -e '
            \$ExtUtils::Manifest::Quiet = 0;
            exit(manicheck() || filecheck() ? 1 : 0)' &&
            grep -qx LICENSE MANIFEST && grep -qx libpmcore/CORE_VERSION MANIFEST"
    check "perl: META.json names the licence, repository and prerequisites" \
        perl -MJSON::PP -e '
            local $/; open my $f, "<", $ARGV[0] or die; my $m = decode_json(<$f>);
            die "license\n" unless "@{$m->{license}}" eq "freebsd";
            die "repository\n" unless $m->{resources}{repository}{url} =~ m{^https://};
            die "perl\n" unless $m->{prereqs}{runtime}{requires}{perl} eq "5.014";
            die "XSLoader\n" unless exists $m->{prereqs}{runtime}{requires}{XSLoader};
            die "Test::More\n" unless $m->{prereqs}{test}{requires}{"Test::More"};
        ' "$pd/META.json"
    # Away from the repository: the core and vectors can only come from the
    # tarball, and every test must pass or say why it cannot run there (as
    # `make disttest` runs them).  Without CI=true, as a CPAN user runs it:
    # under CI the differential test fails rather than skip when the
    # pure-Perl reference is missing, and the tarball has none.
    check "perl: the tarball builds and passes its whole suite on its own" \
        nomake env -u CI sh -c "cd '$pd' && perl Makefile.PL && make && prove -b t/"
fi

# --- Python: the sdist -----------------------------------------------------
# From $T: in the repository, build/ (the C build) would shadow the module.
(cd "$T" && "$PY" -c 'import build.__main__') 2>/dev/null ||
    "$PY" -m pip install --quiet --disable-pip-version-check build >"$T/out" 2>&1
if (cd "$T" && "$PY" -m build --sdist --outdir "$T/sdist" "$ROOT/python") \
        >"$T/out" 2>&1; then
    ok "python: python -m build --sdist"
else
    not_ok "python: python -m build --sdist"
fi
sdist=$(ls "$T"/sdist/*.tar.gz 2>/dev/null | head -n 1)
if [ -n "$sdist" ]; then
    mkdir "$T/py" && tar xzf "$sdist" -C "$T/py"
    sd=$(ls -d "$T"/py/pmcore_milter-*)
    check "python: the sdist carries LICENSE, CHANGES and README.md" \
        sh -c "cmp LICENSE '$sd/LICENSE' && cmp python/CHANGES '$sd/CHANGES' &&
               cmp python/README.md '$sd/README.md'"
    core_copy "python" "$sd/libpmcore_vendor"
    check "python: PKG-INFO names BSD-2-Clause" \
        grep -Eqx 'License(-Expression)?: BSD-2-Clause' "$sd/PKG-INFO"
    # pip builds the wheel in a folder of its own, from the sdist alone.
    check "python: a wheel builds from the sdist" \
        env -C "$T" "$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps \
            --wheel-dir "$T/wheel" "$sdist"
    whl=$(ls "$T"/wheel/*.whl 2>/dev/null | head -n 1)
    check "python: the wheel has the extension and the LICENSE" \
        "$PY" - "${whl:-none}" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert any(n.startswith('milter.') and n.endswith('.so') for n in names), names
assert any('.dist-info/' in n and n.endswith('LICENSE') for n in names), names
EOF
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
