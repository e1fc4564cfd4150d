#!/usr/bin/env bash
# pmc-load's own test (run by `make test`): a tiny load over a unix socket
# and over TCP against the libpmcore bench milter must pass, and the driver
# must fail (exit 1) when the filter answers otherwise: a header it expects
# that is not added, a milter that rejects recipients, a filter that is gone.
# Usage errors exit 2.
set -u
build=${PMC_BENCH_BUILD:-build}
load=$build/bench/pmc-load
milter=$build/bench/milter_pmcore
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0

check() { # name expected-status command...
    local name=$1 want=$2 got
    shift 2
    # The output of the previous check stays in $tmp/out until this one
    # ends, so a check may grep it.
    "$@" >"$tmp/cur" 2>&1
    got=$?
    mv "$tmp/cur" "$tmp/out"
    if [ "$got" -eq "$want" ]; then
        pass=$((pass + 1)); echo "ok - $name"
    else
        fail=$((fail + 1)); echo "not ok - $name (exit $got, wanted $want)"
        sed 's/^/#   /' "$tmp/out"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() { # spec [milter options]
    "$milter" "$@" 2>>"$tmp/milter.log" &
    pids+=($!)
    for _ in $(seq 100); do
        "$load" --target "$1" --conn 1 --msgs 0 --warmup 0 >/dev/null 2>&1 &&
            return 0
        sleep 0.05
    done
    echo "not ok - milter did not start on $1"; cat "$tmp/milter.log"
    exit 1
}

port=$(free_port)
start "unix:$tmp/ok.sock"
start "inet:$port@127.0.0.1"
start "unix:$tmp/reject.sock" --reject

check "unix, 2 conns x 20 msgs, header checked" 0 \
    "$load" --target "unix:$tmp/ok.sock" --conn 2 --msgs 20 \
    --expect-header X-PMC-Bench
check "TCP, 2 conns x 20 msgs, header checked" 0 \
    "$load" --target "inet:$port@127.0.0.1" --conn 2 --msgs 20 \
    --expect-header X-PMC-Bench
check "fresh connections, sendmail personality" 0 \
    "$load" --target "unix:$tmp/ok.sock" --conn 2 --msgs 10 --fresh \
    --personality sendmail --expect-header x-pmc-bench
check "JSON summary" 0 sh -c "'$load' --target 'unix:$tmp/ok.sock' \
    --msgs 5 --json | grep -q '^{\"msgs\": 5, \"errors\": 0,'"
check "a header that is not added fails" 1 \
    "$load" --target "unix:$tmp/ok.sock" --conn 2 --msgs 5 \
    --expect-header X-Not-Added
check "a rejecting milter fails" 1 \
    "$load" --target "unix:$tmp/reject.sock" --conn 2 --msgs 5
check "the rejection is named" 0 grep -q "RCPT: unexpected reply 'r'" \
    "$tmp/out"
check "a missing milter fails" 1 \
    "$load" --target "unix:$tmp/none.sock" --msgs 1 --warmup 0
check "usage error exits 2" 2 "$load" --target "unix:$tmp/ok.sock" --conn 0
check "no target exits 2" 2 "$load"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
