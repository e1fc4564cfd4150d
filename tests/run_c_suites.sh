#!/usr/bin/env bash
# Run C test suites and print one aggregate "N passed, M failed" line last.
#
# usage: tests/run_c_suites.sh 'CMD [ARGS]' ...
#   Each argument is one suite, a command line split on blanks.  A suite must
#   end its output with "N passed, M failed".  A suite that crashes, exits
#   nonzero or prints no such line counts as one more failure, so a broken
#   binary can never look green.  SUITE_WRAPPER (e.g. "valgrind ...") is put
#   in front of every command.
set -u

total_pass=0
total_fail=0
bad=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for suite in "$@"; do
    read -r -a cmd <<<"$suite"
    read -r -a wrap <<<"${SUITE_WRAPPER:-}"
    echo "== ${wrap[*]:+${wrap[*]} }${cmd[*]}"
    "${wrap[@]}" "${cmd[@]}" >"$out" 2>&1
    rc=$?
    cat "$out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "!! ${cmd[0]}: no summary line (exit status $rc)"
        total_fail=$((total_fail + 1))
        bad=1
        continue
    fi
    read -r p _ f _ <<<"$line"
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if [ "$rc" -ne 0 ]; then
        [ "$f" -eq 0 ] && total_fail=$((total_fail + 1))
        echo "!! ${cmd[0]}: exit status $rc"
        bad=1
    fi
    [ "$f" -ne 0 ] && bad=1
done

[ "$#" -eq 0 ] && echo "(no C suites found)"
echo "$total_pass passed, $total_fail failed"
exit "$bad"
