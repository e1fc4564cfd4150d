#!/usr/bin/env bash
# Capture and replay (docs/capture-format.md): conversations captured by a
# milter started with PMCORE_CAPTURE replay with no difference against the
# same milter and with differences (exit 1) against one changed on purpose;
# bad PMCORE_CAPTURE values stop the milter at start-up; and with the
# capture directory on a full tmpfs, mail still flows.
# Ends with "N passed, M failed"; exits nonzero on any failure.
#
# usage: tests/cli/replay.sh PMILTER-TEST PMT-MILTER
set -u
PMT=$(realpath "$1")
MILTER=$(realpath "$2")
FILES=$(cd "$(dirname "$0")/files" && pwd)

T=$(mktemp -d)
pids=()
mounted=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    [ -n "$mounted" ] && umount "$mounted"
    rm -rf "$T"
}
trap cleanup EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() {
    fail=$((fail + 1))
    echo "not ok - $1"
    [ -f "$T/out" ] && sed 's/^/#   /' "$T/out" | head -40
    [ -f "$T/err" ] && sed 's/^/#   stderr: /' "$T/err" | head -10
}
has() {
    if grep -qF -- "$2" "${3:-$T/out}"; then ok "$1"; else
        not_ok "$1: no '$2' in ${3:-the output}"; fi
}
# run NAME EXPECTED-STATUS ARGS...: pmilter-test, output in $T/out.
run() {
    local name=$1 want=$2
    shift 2
    "$PMT" "$@" >"$T/out" 2>"$T/err"
    status=$?
    if [ "$status" -ne "$want" ]; then
        not_ok "$name: exit status $status, wanted $want"
        return 1
    fi
    return 0
}
# start NAME ARGS...: a pmt_milter in the background, up when its socket is.
start() {
    local name=$1
    shift
    "$MILTER" "$@" "unix:$T/$name.sock" >/dev/null 2>"$T/$name.log" &
    pids+=($!)
    eval "pid_$name=$!"
    for _ in $(seq 1 100); do
        [ -e "$T/$name.sock" ] && return 0
        sleep 0.05
    done
    echo "# $name did not start:"; sed 's/^/#   /' "$T/$name.log"
    return 1
}
# stop NAME: SIGTERM and wait, so its last stderr line is written.
stop() {
    local p
    eval "p=\$pid_$1"
    kill "$p" && wait "$p" 2>/dev/null
}

# --- capture -----------------------------------------------------------------
mkdir "$T/cap"
# --log makes the milter take EOH and the body, so bodies are captured.
PMCORE_CAPTURE="$T/cap" start captured --log "$T/captured.events" || exit 1
"$PMT" -q "unix:$T/captured.sock" "$FILES/plain.eml" >/dev/null
"$PMT" -q -f spammer@example.net "unix:$T/captured.sock" >/dev/null
"$PMT" -q "unix:$T/captured.sock" "$FILES/modify.eml" >/dev/null
"$PMT" -q -r good@example.com -r reject@example.com \
    "unix:$T/captured.sock" "$FILES/plain.eml" >/dev/null
stop captured
has "the milter counted its captures" "pmt_milter: captures 4, dropped 0" \
    "$T/captured.log"
n=$(ls "$T/cap" | grep -c '\.pmcap$')
[ "$n" -eq 4 ] && ok "one file per conversation" ||
    not_ok "one file per conversation: $n files"
first=$(ls "$T/cap"/*.pmcap | head -1)
[ "$(head -1 "$first")" = "pmcore-capture 1" ] && ok "versioned first line" ||
    not_ok "versioned first line: $(head -1 "$first")"
has "macros readable" "> macros C j=" "$first"
cat "$T/cap"/*.pmcap >"$T/all"
has "bodies verbatim after their length" "> B =" "$T/all"
has "a replaced body too" "< b =" "$T/all"
has "ends with the end record" " end" <(tail -1 "$first")

# --- replay against the same milter ------------------------------------------
start same --log "$T/same.events" || exit 1
start changed --log "$T/changed.events" --changed || exit 1
if run "replay DIR, same milter" 0 --replay "$T/cap" \
        --socket "unix:$T/same.sock"; then
    has "replay DIR: summary" "4 conversations, 4 identical, 0 differ"
fi
if run "replay FILE, same milter" 0 --replay "$first" \
        --socket "unix:$T/same.sock"; then
    has "replay FILE: says identical" "$first: identical"
fi

# --- replay against the changed milter ---------------------------------------
if run "replay DIR, changed milter" 1 --replay "$T/cap" \
        --socket "unix:$T/changed.sock"; then
    has "changed: summary" "4 conversations, 1 identical, 3 differ"
    has "changed: where" "EOM of message 1"
    has "changed: a new modification" "now:  add header X-Pmt-Version: 2"
    has "changed: reply text, then" "then: reply 550 5.7.1 sender refused"
    has "changed: reply text, now" "now:  reply 550 5.7.1 sender blocked"
fi
spam=$(grep -l 'M <spammer@example.net>' "$T/cap"/*.pmcap)
run "replay FILE, changed milter" 1 --replay "$spam" \
    --socket "unix:$T/changed.sock" &&
    has "replay FILE: names the command" "MAIL of message 1"

# --- errors --------------------------------------------------------------------
run "replay: no such file" 2 --replay "$T/none.pmcap" \
    --socket "unix:$T/same.sock" &&
    has "no such file: message" "No such file or directory" "$T/err"
run "replay: not a capture" 2 --replay "$FILES/plain.eml" \
    --socket "unix:$T/same.sock" &&
    has "not a capture: message" "not a pmcore capture file" "$T/err"
sed '1s/.*/pmcore-capture 2/' "$first" >"$T/v2.pmcap"
run "replay: a later version" 2 --replay "$T/v2.pmcap" \
    --socket "unix:$T/same.sock" &&
    has "later version: message" "is not version 1" "$T/err"
# A capture still being written ends anywhere: it is refused, not replayed
# as a shorter conversation.
head -c -3 "$first" >"$T/cut.pmcap"
run "replay: a file cut mid-line" 2 --replay "$T/cut.pmcap" \
    --socket "unix:$T/same.sock" &&
    has "cut mid-line: names the line" \
        "cut.pmcap:$(wc -l <"$T/cut.pmcap" | awk '{print $1 + 1}'): the file ends in the middle of this line" \
        "$T/err"
run "replay: nobody listening" 2 --replay "$first" \
    --socket "unix:$T/nobody.sock" &&
    has "nobody listening: message" "cannot connect" "$T/err"
run "replay: no --socket" 2 --replay "$first" &&
    has "no --socket: message" "--socket" "$T/err"

# --- bad PMCORE_CAPTURE values stop the milter ----------------------------------
bad() {
    PMCORE_CAPTURE=$1 timeout 10 "$MILTER" "unix:$T/bad.sock" \
        >/dev/null 2>"$T/err"
    status=$?
    if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] &&
            grep -qF -- "$2" "$T/err"; then
        ok "PMCORE_CAPTURE=$1 refused"
    else
        not_ok "PMCORE_CAPTURE=$1: exit $status, wanted a message '$2'"
    fi
}
bad "$T/missing" "PMCORE_CAPTURE=$T/missing: cannot open the directory"
bad "$T/cap,files=many" "bad option 'files=many'"
bad "$T/cap,size=" "bad option 'size='"

# --- a full disk: the captures go, the mail flows --------------------------------
if [ "$(id -u)" -ne 0 ]; then
    echo "ok - full disk # SKIP needs root to mount a tmpfs" \
         "(test_capture covers failing writes with RLIMIT_FSIZE)"
else
    mkdir "$T/full"
    if mount -t tmpfs -o size=64k tmpfs "$T/full"; then
        mounted="$T/full"
        big="$T/big.eml"
        { printf 'Subject: big\n\n'
          for i in $(seq 1 200); do
              printf 'line %03d of a body that fills the disk quickly.....\n' "$i"
          done; } >"$big"
        PMCORE_CAPTURE="$T/full" start full --log "$T/full.events" || exit 1
        flowed=0
        for i in $(seq 1 30); do
            "$PMT" -q "unix:$T/full.sock" "$big" >"$T/out" 2>&1 &&
                grep -q "^X-Pmt-Count: 1" "$T/out" && flowed=$((flowed + 1))
        done
        stop full
        [ "$flowed" -eq 30 ] && ok "full disk: all 30 messages accepted" ||
            not_ok "full disk: $flowed of 30 messages accepted"
        dropped=$(sed -n 's/.*captures \([0-9]*\), dropped \([0-9]*\)/\2/p' \
                  "$T/full.log")
        kept=$(ls "$T/full" | grep -c '\.pmcap$')
        captured=$(sed -n 's/.*captures \([0-9]*\), dropped.*/\1/p' \
                   "$T/full.log")
        [ "${dropped:-0}" -gt 0 ] && [ "$((captured + dropped))" -eq 30 ] &&
            [ "$kept" -eq "$captured" ] &&
            ok "full disk: $dropped captures dropped and counted, $kept kept" ||
            not_ok "full disk: captured '$captured', dropped '$dropped'," \
                   "$kept files"
        incomplete=0
        for f in "$T/full"/*.pmcap; do
            [ -e "$f" ] || continue
            tail -1 "$f" | grep -q ' end$' || incomplete=$((incomplete + 1))
        done
        [ "$incomplete" -eq 0 ] && ok "full disk: no partial file left" ||
            not_ok "full disk: $incomplete partial files"
        run "full disk: what was kept replays" 0 --replay "$T/full" \
            --socket "unix:$T/same.sock" &&
            has "full disk: replay summary" "$kept identical, 0 differ"
    else
        not_ok "full disk: cannot mount a tmpfs"
    fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
