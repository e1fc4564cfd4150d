#!/usr/bin/env python3
"""Send each case of files/split.cases through pmilter-test to pmt_milter
--log, and compare what the milter received with what the case expects
(tests/c/test_client.c runs the same cases through pmc_client_message).
Prints "ok - ..." or "not ok - ..." per check for run.sh to count.

usage: split_cases.py CASES PMILTER-TEST TMPDIR
   (TMPDIR holds split.sock, split-ls.sock (--leadspc) and their split.log)
"""
import os
import re
import subprocess
import sys

ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\",
           '"': b'"'}


def strings(text):
    """The "..." and "..."*N strings of a line, as bytes."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"(?:\*(\d+))?', text):
        raw, times = m.group(1), int(m.group(2) or 1)
        b, i = bytearray(), 0
        while i < len(raw):
            if raw[i] != "\\":
                b += raw[i].encode("utf-8")
                i += 1
            elif raw[i + 1] == "x":
                b.append(int(raw[i + 2:i + 4], 16))
                i += 4
            else:
                b += ESCAPES[raw[i + 1]]
                i += 2
        out.append(bytes(b) * times)
    return out


def read_cases(path):
    cases, cur = [], None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "case":
            cur = {"name": rest, "leadspc": False, "msg": b"",
                   "events": [], "body": b""}
        elif word == "leadspc":
            cur["leadspc"] = True
        elif word == "message":
            cur["msg"] += b"".join(strings(rest))
        elif word == "body":
            cur["body"] += b"".join(strings(rest))
        elif word == "header":
            name, value = strings(rest)
            cur["events"].append(("header", name, value))
        elif word == "end":
            cur["events"] += [("eoh",)] + ([("body",)] if cur["body"] else
                                           []) + [("eom",)]
            cases.append(cur)
        else:
            raise SystemExit("split.cases: unknown line %r" % line)
    return cases


def received(log):
    """The milter's log as events, the body's chunks joined."""
    events, body = [], b""
    if not os.path.exists(log):
        return events, body
    for line in open(log, encoding="ascii"):
        word, *hexes = line.split(" ")
        hexes = [bytes.fromhex(h.strip()) for h in hexes]
        word = word.strip()
        if word == "body":
            if not body:
                events.append(("body",))
            body += hexes[0]
        else:
            events.append(tuple([word] + hexes))
    return events, body


def main():
    cases_path, pmt, tmp = sys.argv[1:4]
    cases = read_cases(cases_path)
    print("%s - split: %d cases read" % ("ok" if len(cases) >= 25
                                          else "not ok", len(cases)))
    log = os.path.join(tmp, "split.log")
    msg = os.path.join(tmp, "split-msg.eml")
    for c in cases:
        what = "split %s" % c["name"]
        with open(msg, "wb") as f:
            f.write(c["msg"])
        if os.path.exists(log):
            os.unlink(log)
        sock = os.path.join(tmp, "split-ls.sock" if c["leadspc"]
                            else "split.sock")
        p = subprocess.run([pmt, "unix:" + sock, msg],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            print("not ok - %s: exit status %d: %s" % (
                what, p.returncode, p.stderr.decode("latin-1").strip()))
            continue
        events, body = received(log)
        print("%s - %s: the filter's events" % (
            "ok" if events == c["events"] else "not ok", what))
        if events != c["events"]:
            sys.stderr.write("%s:\n  got  %r\n  want %r\n" % (
                what, [e[:3] for e in events][:8], c["events"][:8]))
        print("%s - %s: the body bytes" % (
            "ok" if body == c["body"] else "not ok", what))


if __name__ == "__main__":
    main()
