#!/usr/bin/env bash
# The core is linked statically into the Perl and Python extensions, next to
# other libraries, so its names must not collide there:
#  - every global symbol it exports (default visibility) starts with pmc_,
#    the public prefix (DESIGN.md "Rules of the house");
#  - every other global is hidden and starts with pmci_, the internal prefix,
#    so it never leaves the extension that embeds the core.
set -euo pipefail
lib=${1:-build/libpmcore.a}
[ -f "$lib" ] || { echo "check_symbols: $lib not found" >&2; exit 1; }

# readelf -s columns: Num Value Size Type Bind Vis Ndx Name.  Keep defined
# (Ndx not UND) GLOBAL or WEAK symbols, print "visibility name".
syms=$(readelf -sW "$lib" |
       awk '($5 == "GLOBAL" || $5 == "WEAK") && $7 != "UND" && NF >= 8 \
            { print $6, $8 }' | sort -u)
public_bad=$(printf '%s\n' "$syms" | awk '$1 == "DEFAULT" && $2 !~ /^pmc_/ { print $2 }')
hidden_bad=$(printf '%s\n' "$syms" | awk '$1 != "DEFAULT" && $2 !~ /^pmci_/ { print $2 }')
public=$(printf '%s\n' "$syms" | awk '$1 == "DEFAULT"' | grep -c . || true)
hidden=$(printf '%s\n' "$syms" | awk '$1 != "DEFAULT"' | grep -c . || true)

status=0
if [ -n "$public_bad" ]; then
    echo "check_symbols: exported symbols without the pmc_ prefix in $lib:"
    printf '  %s\n' $public_bad
    status=1
fi
if [ -n "$hidden_bad" ]; then
    echo "check_symbols: hidden symbols without the pmci_ prefix in $lib:"
    printf '  %s\n' $hidden_bad
    status=1
fi
[ $status -eq 0 ] &&
    echo "check_symbols: $public exported symbols, all pmc_*; $hidden hidden, all pmci_*"
exit $status
