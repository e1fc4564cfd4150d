#!/usr/bin/env bash
# pmilter-test against real milters on real sockets: the C example
# (hello_milter), the suite's own milter (pmt_milter), a server that
# answers garbage, one that never answers, and sockets nobody listens on.
# Ends with "N passed, M failed"; exits nonzero on any failure.
#
# usage: tests/cli/run.sh PMILTER-TEST PMT-MILTER HELLO-MILTER
set -u
PMT=$(realpath "$1")
MILTER=$(realpath "$2")
HELLO=$(realpath "$3")
FILES=$(cd "$(dirname "$0")/files" && pwd)
PY=${PY:-python3}

T=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() {
    fail=$((fail + 1))
    echo "not ok - $1"
    [ -f "$T/out" ] && sed 's/^/#   /' "$T/out" | head -60
    [ -f "$T/err" ] && sed 's/^/#   stderr: /' "$T/err" | head -20
}

# Wait for a server's socket (unix path) or its "listening" line.
wait_for() {
    for _ in $(seq 1 100); do
        [ -e "$1" ] && return 0
        sleep 0.05
    done
    echo "timed out waiting for $1" >&2
    return 1
}

# run NAME EXPECTED-STATUS ARGS...: run pmilter-test, keep its output.
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

# has NAME PATTERN [FILE]: the output holds a fixed string.
has() {
    if grep -qF -- "$2" "${3:-$T/out}"; then ok "$1"; else
        not_ok "$1: no '$2' in ${3:-the output}"; fi
}
lacks() {
    if grep -qF -- "$2" "${3:-$T/out}"; then
        not_ok "$1: unexpected '$2'"; else ok "$1"; fi
}

# --- the milters ----------------------------------------------------------
"$HELLO" "unix:$T/hello.sock" 2>"$T/hello.log" & pids+=($!)
"$MILTER" "unix:$T/pmt.sock" >"$T/pmt.port" 2>"$T/pmt.log" & pids+=($!)
"$MILTER" "inet:0@127.0.0.1" >"$T/pmt-inet.port" 2>"$T/pmt-inet.log" &
pids+=($!)
# Two that log what they receive, for the message-splitting cases.
"$MILTER" --log "$T/split.log" "unix:$T/split.sock" >/dev/null \
    2>"$T/split.err" & pids+=($!)
"$MILTER" --log "$T/split.log" --leadspc "unix:$T/split-ls.sock" \
    >/dev/null 2>"$T/split-ls.err" & pids+=($!)
# Broken peers: one answers the negotiation with an HTTP error, one accepts
# and never says anything, one behaves until EOM and then sends a header
# modification it did not negotiate.
"$PY" - "$T/garbage.sock" "$T/silent.sock" "$T/broken.sock" <<'EOF' &
import os, socket, struct, sys, threading
def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data
def broken(c):
    buf = b""
    while True:
        data = c.recv(65536)
        if not data:
            return
        buf += data
        while len(buf) >= 5 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
            n = struct.unpack(">I", buf[:4])[0]
            cmd, buf = buf[4:5], buf[4 + n:]
            if cmd == b"O":
                c.sendall(packet(b"O", struct.pack(">III", 6, 0, 0)))
            elif cmd == b"E":
                c.sendall(packet(b"h", b"X-Not-Allowed\0yes\0"))
            elif cmd == b"Q":
                return
            elif cmd not in (b"D", b"A"):
                c.sendall(packet(b"c"))
def serve(path, how):
    s = socket.socket(socket.AF_UNIX)
    s.bind(path + ".tmp"); s.listen(8); os.rename(path + ".tmp", path)
    held = []
    while True:
        c, _ = s.accept()
        if how == "garbage":
            c.recv(4096)
            c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            c.close()
        elif how == "silent":
            held.append(c)
        else:
            threading.Thread(target=broken, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(sys.argv[2], "silent"), daemon=True).start()
threading.Thread(target=serve, args=(sys.argv[3], "broken"), daemon=True).start()
serve(sys.argv[1], "garbage")
EOF
pids+=($!)
for s in hello.sock pmt.sock garbage.sock silent.sock broken.sock \
         split.sock split-ls.sock; do
    wait_for "$T/$s" || exit 1
done
for _ in $(seq 1 100); do
    grep -q listening "$T/pmt-inet.port" && break
    sleep 0.05
done
PORT=$(awk '/listening/ {print $2}' "$T/pmt-inet.port")

# --- transcript against the C example --------------------------------------
if run "transcript" 0 -r bob@example.com -r nobody@example.com \
        "unix:$T/hello.sock" "$FILES/plain.eml"; then
    has "transcript: negotiation" "<- OPTNEG      version 6"
    has "transcript: RCPT sent" "-> RCPT        <bob@example.com>"
    has "transcript: refused recipient" \
        "<- REPLYCODE   550 5.1.1 No such user here"
    has "transcript: unsent events say why" \
        "-- HELO        client.example.org  [not sent: the filter negotiated NOHELO]"
    has "transcript: modification" "<- ADDHEADER   X-Hello: world"
    has "transcript: recipient summary" \
        "<nobody@example.com> (refused: 550 5.1.1 No such user here)"
    has "transcript: resulting message" "X-Hello: world"
    has "transcript: Postfix ABORT before QUIT" "-> ABORT"
    has "transcript: result line" "== result: accepted, exit status 0"
fi

# --- JSON -----------------------------------------------------------------
if run "json" 0 --json -r bob@example.com "unix:$T/hello.sock" \
        "$FILES/plain.eml"; then
    if "$PY" - "$T/out" <<'EOF'; then ok "json: document"; else not_ok "json: document"; fi
import json, sys
d = json.load(open(sys.argv[1]))
assert d["outcome"] == "accepted" and d["exit_status"] == 0, d["outcome"]
assert d["personality"] == "postfix"
assert d["negotiation"]["actions"] == ["ADDHDRS"]
eom = [s for s in d["steps"] if s["command"] == "EOM"][0]
assert eom["reply"] == "continue"
assert eom["modifications"] == [
    {"type": "add_header", "name": "X-Hello", "value": "world"}], eom
helo = [s for s in d["steps"] if s["command"] == "HELO"][0]
assert helo["sent"] is False and "NOHELO" in helo["not_sent"]
m = d["messages"][0]
assert m["outcome"] == "accepted" and m["reached_eom"]
assert ["X-Hello", "world"] in m["headers"], m["headers"]
assert m["body"] == "Hello Bob.\r\n", repr(m["body"])
assert d["errors"] == []
EOF
fi
if run "json: reject" 1 --json -r nobody@example.com "unix:$T/hello.sock"
then
    if "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["outcome"] == "rejected" and d["exit_status"] == 1
m = d["messages"][0]
assert m["recipients"][0]["state"] == "refused"
assert m["recipients"][0]["reply"] == "550 5.1.1 No such user here"
assert not m["reached_eom"]
' "$T/out"; then ok "json: reject document"; else not_ok "json: reject document"; fi
fi

# --- modifications applied to the output message ---------------------------
if run "modifications" 0 -r bob@example.com -r carol@example.com \
        -o "$T/result.eml" "unix:$T/pmt.sock" "$FILES/modify.eml"; then
    printf '%s\n' 'X-Top: first' 'From: Alice <alice@example.org>' \
        'To: Bob <bob@example.com>' 'Subject: [modified] please modify' \
        'Received: from a by b;' '	Thu, 01 Jan 2026 00:00:00 +0000' \
        'X-Added: yes' '' 'replaced body' 'line 2' >"$T/want.eml"
    if cmp -s "$T/want.eml" "$T/result.eml"; then
        ok "modifications: resulting message"
    else
        not_ok "modifications: resulting message"
        diff "$T/want.eml" "$T/result.eml" | sed 's/^/#   /'
    fi
    has "modifications: CHGHEADER delete" "<- CHGHEADER   #1 X-Remove (delete)"
    has "modifications: envelope sender" \
        "<sender@example.org> -> <new-sender@example.org> (changed by the filter)"
    has "modifications: deleted recipient" "<bob@example.com> (deleted)"
    has "modifications: added recipient with args" \
        "<added2@example.com> NOTIFY=NEVER (added)"
    has "modifications: quarantine" "quarantine  held for review"
    has "modifications: written" "written to  $T/result.eml"
fi
if run "modifications: CRLF output" 0 --quiet --crlf -r bob@example.com \
        "unix:$T/pmt.sock" "$FILES/modify.eml"; then
    what="modifications: --quiet --crlf prints only the message"
    if head -c 14 "$T/out" | cmp -s - <(printf 'X-Top: first\r\n'); then
        ok "$what"
    else
        not_ok "$what"
    fi
fi

# --- message splitting: the cases test_client.c runs too -------------------
# Each case of files/split.cases goes through pmilter-test to a milter that
# logs what it received; that must be what the case expects, byte for byte.
"$PY" "$(dirname "$0")/split_cases.py" "$FILES/split.cases" "$PMT" "$T" \
    >"$T/split.tap" 2>"$T/split.diag"
split_status=$?
while read -r verdict rest; do
    case $verdict in
    ok) ok "${rest#- }" ;;
    *) not_ok "${rest#ok - }" ;;
    esac
done <"$T/split.tap"
sed 's/^/#   /' "$T/split.diag"
[ "$split_status" -eq 0 ] || not_ok "split: split_cases.py exit status $split_status"

# --- verdicts and exit statuses --------------------------------------------
run "reject at EOM" 1 "unix:$T/pmt.sock" "$FILES/reject.eml" &&
    has "reject at EOM: reason" \
        "== message 1: rejected at EOM: 550 5.7.1 content refused"
run "reject at MAIL" 1 -f spammer@example.net "unix:$T/pmt.sock" &&
    lacks "reject at MAIL: nothing after MAIL" "-> RCPT"
run "reject at HELO" 1 --helo bad.example "unix:$T/pmt.sock" &&
    has "reject at HELO: reply" "<- REPLYCODE   554 5.7.1 bad HELO"
run "tempfail recipient" 2 -r temp@example.com "unix:$T/pmt.sock" &&
    has "tempfail recipient: state" \
        "<temp@example.com> (tempfailed: 451 4.3.0 try later)"
printf 'Subject: tempfail me\n\nx\n' >"$T/tempfail.eml"
run "tempfail at EOM" 2 "unix:$T/pmt.sock" "$T/tempfail.eml" && ok "tempfail at EOM"
printf 'Subject: discard me\n\nx\n' >"$T/discard.eml"
run "discard" 3 "unix:$T/pmt.sock" "$T/discard.eml" &&
    has "discard: reply" "<- DISCARD"

# --- a scripted conversation, several messages on one connection ------------
if run "script" 0 --script "$FILES/conversation.script" "unix:$T/pmt.sock"
then
    has "script: message 1" "== message 1: accepted at EOM"
    has "script: folded header" '-> HEADER      Subject: first\n  folded part'
    has "script: ESMTP argument" "-> MAIL        <alice@example.org> SIZE=100"
    has "script: per-connection state" "X-Pmt-Count: 1"
    has "script: RSET aborts message 2" "== message 2: aborted"
    has "script: message 3 from a file" \
        "== message 3: accepted at EOM, 10 modifications"
    has "script: Postfix ABORT before MAIL" \
        "(Postfix sends ABORT before a new MAIL)"
    has "script: queue ID macro" "i=4C00000003"
fi
run "script: syntax error" 64 --script "$FILES/bad.script" \
    "unix:$T/pmt.sock" &&
    has "script: error names file and line" "bad.script:3: unknown command 'frobnicate'" "$T/err"

# --- Sendmail personality ----------------------------------------------------
if run "sendmail" 0 --sendmail -r bob@example.com "unix:$T/hello.sock"; then
    has "sendmail: header line" "Sendmail personality"
    lacks "sendmail: no ABORT after EOM" "-> ABORT"
    has "sendmail: msg_id macro at EOM" "{msg_id}=<pmilter-test.1@example.org>"
fi
if run "sendmail: macros" 0 -p sendmail "unix:$T/pmt.sock"; then
    has "sendmail: queue ID at MAIL" "i=4C00000001 {mail_addr}=sender@example.org"
fi
printf 'connect - 2001:db8::5 25\nhelo x\nquit\n' >"$T/v6.script"
run "sendmail: IPv6 client" 0 --sendmail --script "$T/v6.script" \
    "unix:$T/hello.sock" &&
    has "sendmail: IPv6 host form" "[IPv6:2001:db8::5], inet6 2001:db8::5 port 25"

# --- macros ------------------------------------------------------------------
printf 'connect\nhelo x\nmail <a@example.org>\nrcpt <b@example.com>\nheader Subject: m\neom\n' >"$T/macro.script"
if run "macros: --macro" 0 --macro connect:j=custom.example \
        --macro 'eom:{daemon_name}=smtpd-test' --macro mail:{mail_host} \
        --script "$T/macro.script" "unix:$T/pmt.sock"; then
    has "macros: override in transcript" "j=custom.example"
    has "macros: the milter saw them" \
        "X-Pmt-Macros: i=4C00000001 j=custom.example {daemon_name}=smtpd-test"
    lacks "macros: removed default" "{mail_host}="
fi

# --- protocol version and --ignore-verdicts ----------------------------------
if run "version 2" 0 --proto-version 2 "unix:$T/pmt.sock"; then
    has "version 2: offer" "-> OPTNEG      version 2, actions 0x1ff, protocol 0x7f"
    has "version 2: no DATA" "-- DATA  [not sent: protocol version 2 has no DATA]"
fi
run "ignore verdicts" 1 --ignore-verdicts -f spammer@example.net \
    "unix:$T/pmt.sock" &&
    has "ignore verdicts: RCPT sent after a rejected MAIL" \
        "-> RCPT        <recipient@example.com>" &&
    has "ignore verdicts: the filter drops it, no wait for a reply" \
        "out of order: the filter drops it"

# --- TCP ---------------------------------------------------------------------
run "inet socket" 0 -r bob@example.com "inet:$PORT@127.0.0.1" &&
    has "inet socket: modification" "X-Pmt-Count: 1"

# IPv6 loopback, where the machine has one (containers may not).
if "$PY" -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' \
        2>/dev/null; then
    "$MILTER" "inet6:0@[::1]" >"$T/pmt-inet6.port" 2>"$T/pmt-inet6.log" &
    pids+=($!)
    for _ in $(seq 1 100); do
        grep -q listening "$T/pmt-inet6.port" && break
        sleep 0.05
    done
    PORT6=$(awk '/listening/ {print $2}' "$T/pmt-inet6.port")
    run "inet6 socket" 0 "inet6:$PORT6@[::1]" &&
        has "inet6 socket: modification" "X-Pmt-Count: 1"
else
    echo "ok - inet6 socket # skip: no IPv6 loopback on this machine"
fi

# --- output files per message, UNKNOWN and QUIT_NC -------------------------
cat >"$T/multi.script" <<'EOF2'
connect
helo a
unknown VRFY root
mail <a@example.org>
rcpt <b@example.com>
header Subject: one
eom
quit-nc
connect other.example 198.51.100.1 2525
helo b
mail <a@example.org>
rcpt <b@example.com>
header Subject: two
eom
EOF2
if run "output per message" 0 --script "$T/multi.script" \
        -o "$T/msg-%d.eml" "unix:$T/pmt.sock"; then
    has "output per message: first file" "Subject: one" "$T/msg-1.eml"
    has "output per message: second file" "Subject: two" "$T/msg-2.eml"
    # QUIT_NC keeps the socket, and the test milter counts per socket.
    has "output per message: same socket after QUIT_NC" \
        "X-Pmt-Count: 2" "$T/msg-2.eml"
    has "UNKNOWN not sent to a filter without the callback" \
        "-- UNKNOWN     VRFY root  [not sent: the filter negotiated NOUNKNOWN]"
    has "QUIT_NC" "-> QUIT_NC"
fi

# --- errors ------------------------------------------------------------------
run "protocol error" 4 "unix:$T/garbage.sock" &&
    has "protocol error: clear message" "pmilter-test: protocol error: OPTNEG:" "$T/err"
run "protocol error: json" 4 --json "unix:$T/garbage.sock" &&
    has "protocol error: json outcome" '"outcome":"protocol_error"'
run "protocol error at EOM" 4 "unix:$T/broken.sock" "$FILES/plain.eml" &&
    has "protocol error at EOM: names the fault" \
        "pmilter-test: protocol error: EOM:" "$T/err"
has "protocol error at EOM: message left undecided" \
    "== message 1: undecided"
has "protocol error at EOM: result" "== result: protocol error, exit status 4"
run "timeout" 4 --timeout 1 "unix:$T/silent.sock" &&
    has "timeout: named" "TIMEOUT" "$T/err"
run "unreachable unix socket" 5 "unix:$T/nobody-here.sock" &&
    has "unreachable: clear message" \
        "cannot connect to unix:$T/nobody-here.sock: No such file or directory" "$T/err"
# A port that was free a moment ago: bind, note it, close.
FREE=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run "refused TCP port" 5 "inet:$FREE@127.0.0.1" &&
    has "refused TCP port: message" "Connection refused" "$T/err"
run "bad spec" 5 "bogus:thing" && has "bad spec: message" "bogus" "$T/err"
run "bad option" 64 --no-such-option "unix:$T/pmt.sock" && ok "bad option"
run "missing message file" 64 "unix:$T/pmt.sock" "$T/none.eml" &&
    has "missing message file: message" "cannot open" "$T/err"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
