#!/usr/bin/env bash
# Run every libFuzzer target in BUILD_DIR/fuzz for SECONDS each, seeded from
# tests/vectors and from tests/fuzz/regress/TARGET (inputs that once found a
# bug, so they are replayed every run).  New inputs accumulate in
# BUILD_DIR/corpus/TARGET (kept between runs); crashes land in
# BUILD_DIR/artifacts/ and fail the run.
#
# usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -euo pipefail
build=$1
secs=$2
seeds=$build/seeds

rm -rf "$seeds"
if compgen -G 'tests/vectors/*.vec' >/dev/null; then
    python3 tests/fuzz/vec2seed.py tests/vectors "$seeds"
fi
mkdir -p "$build/artifacts"

status=0
for bin in "$build"/fuzz/fuzz_*; do
    target=${bin##*/fuzz_}         # session, client, ...
    corpus=$build/corpus/$target
    mkdir -p "$corpus" "$seeds/$target"
    regress=tests/fuzz/regress/$target
    [ -d "$regress" ] || regress=
    echo "== fuzz_$target for ${secs}s"
    log=$build/fuzz_$target.log
    # -max_len: room for a few body chunks; seeds longer than this are cut.
    if ! "$bin" -max_total_time="$secs" -max_len=65536 -timeout=20 \
            -print_final_stats=1 -artifact_prefix="$build/artifacts/" \
            "$corpus" "$seeds/$target" $regress >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "!! fuzz_$target failed; log: $log"
        status=1
        continue
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    echo "fuzz_$target: ${runs:-?} runs in ${secs}s, $cov, corpus $(ls "$corpus" | wc -l) files, no crash"
done
exit $status
