#!/usr/bin/env bash
# make bench-core: a timed run, then instructions per message under
# callgrind.  Callgrind counts every user-space instruction of the process,
# so each mode is run twice, with N messages and with 0, and the difference
# divided by N leaves the per-message cost without start-up and encoding.
#
# usage: bench/core/run.sh BENCH_BINARY [N_TIMED] [N_CALLGRIND]
set -euo pipefail
bin=$1
timed=${2:-1000000}
n=${3:-2000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" -n "$timed"
echo

if ! command -v valgrind >/dev/null; then
    echo "valgrind not installed: no instruction counts (scripts/setup.sh)"
    exit 0
fi

# Total instructions (Ir) of one run, and the part spent inside
# pmc_session_feed and what it calls (the session layer proper), counted by
# a second run that collects only while inside it (exact, whatever the
# compiler inlined).
count() {
    local out=$tmp/cg.$1.$2 only=$tmp/cgf.$1.$2
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" -q -m "$1" \
        -n "$2" >/dev/null 2>&1
    valgrind --tool=callgrind --toggle-collect=pmc_session_feed \
        --callgrind-out-file="$only" "$bin" -q -m "$1" -n "$2" >/dev/null 2>&1
    echo "$(sed -n 's/^summary: *//p' "$out") $(sed -n 's/^summary: *//p' "$only")"
}

# Where the instructions go (self cost), from the reuse run: a guide for
# whoever optimises the session layer.
profile() {
    echo "top functions by own instructions, reuse mode, $n messages:"
    callgrind_annotate "$tmp/cg.reuse.$n" 2>/dev/null |
        awk '/file:function/ { on = 1; getline; next }
             on && NF >= 3 && n < 12 { print "  " $0; n++ }'
}

printf '%-6s %10s %18s %18s\n' mode messages "instr/message" "in session_feed"
for mode in reuse batch fresh; do
    read -r t0 f0 < <(count "$mode" 0)
    read -r t1 f1 < <(count "$mode" "$n")
    printf '%-6s %10d %18d %18d\n' "$mode" "$n" $(((t1 - t0) / n)) \
        $(((f1 - f0) / n))
done
echo "(callgrind Ir, user space, baseline run with 0 messages subtracted;"
echo " target for the session layer: <= 5000 per message in reuse mode)"
echo
profile
