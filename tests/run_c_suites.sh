#!/usr/bin/env bash
# Run C test suites and print one aggregate "N passed, M failed" line last.
#
# usage: tests/run_c_suites.sh 'CMD [ARGS]' ...
#   Each argument is one suite, a command line split on blanks, that prints
#   TAP (tests/c/tap.h): "ok N - ..." and "not ok N - ..." lines and a plan
#   "1..N".  The totals count those lines, so they are what `prove` sees.
#   A suite that crashes, exits nonzero, prints no plan or a plan that does
#   not match its test lines counts as one more failure, so a broken binary
#   can never look green.  SUITE_WRAPPER (e.g. "valgrind ...") is put in
#   front of every command.
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
    # Only unindented lines: TAP's own, not a diagnostic quoting one.
    p=$(grep -cE '^ok( |$)' "$out")
    f=$(grep -cE '^not ok( |$)' "$out")
    plan=$(grep -E '^1\.\.[0-9]+' "$out" | tail -n 1)
    planned=${plan#1..}
    planned=${planned%%[!0-9]*}
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    problem=
    if [ -z "$plan" ]; then
        problem="no TAP plan"
    elif [ "$planned" -ne $((p + f)) ]; then
        # The suite stopped early, or something else printed test lines.
        problem="plan $plan but $((p + f)) test lines"
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        problem="no failed check"
    fi
    if [ -n "$problem" ]; then
        echo "!! ${cmd[0]}: $problem (exit status $rc)"
        total_fail=$((total_fail + 1))
        bad=1
    elif [ "$rc" -ne 0 ]; then
        echo "!! ${cmd[0]}: exit status $rc"
    fi
    [ "$f" -ne 0 ] && bad=1
    [ "$rc" -ne 0 ] && bad=1
done

[ "$#" -eq 0 ] && echo "(no C suites found)"
echo "$total_pass passed, $total_fail failed"
exit "$bad"
