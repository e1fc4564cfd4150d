#!/usr/bin/env python3
"""make bench-instr: user-space instructions per message, split by who
spends them, for the reference milter of each language.

Method (issue 17): each milter (every callback registered, one header
added at EOM) runs under `valgrind --tool=callgrind --trace-children=yes`;
pmc-load sends it N messages on one connection (4 KiB body, 12 headers,
1 recipient, Postfix personality, every reply checked), once with N=20 and
once with N=200; a part's figure is its difference between the two runs
divided by the difference in messages (180), so start-up, warm-up and the
connection's own cost cancel out.  Instruction counts do not depend on the
machine's load, unlike the timed benchmarks.

The milters: build/bench/milter_pmcore (C, loop model), Python's
bench/python/trivial_milter.py (Milter.runmilter: the thread pool in lead
mode), Perl's bench/perl/trivial_milter.pl (the `loop` dispatcher), and
Sendmail's libmilter (build/bench/milter_libmilter) for scale.

The rows NAME-fresh run the same milters with `pmc-load --fresh`, a new
connection for every message, as Postfix opens one for each SMTP session:
their figures include a connection's opening, negotiation and close.

Environment knobs:
  MILTERS=c,python,perl,libmilter   which rows (missing builds are skipped
                                    with a note, unless named here); the
                                    default adds c-fresh, python-fresh,
                                    perl-fresh and libmilter-fresh
  MSGS="20 200"                     the two run lengths
Writes the table to stdout and BUILD/bench/bench-instr.md, the figures to
BUILD/bench/bench-instr.json.  Exit 1 when a run failed.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402
import cgsplit  # noqa: E402

LOAD = ["--conn", "1", "--rcpts", "1", "--headers", "12", "--body", "4096",
        "--personality", "postfix", "--expect-header", "X-PMC-Bench",
        "--json"]

# Issue 17's acceptance: (row, column, limit).
TARGETS = [("c", "total", 10000), ("python", "total", 60000),
           ("perl", "total", 45000), ("python", "libpmcore", 8000),
           ("perl", "libpmcore", 8000)]

COLUMNS = ("total", "interpreter", "libpmcore", "session", "loop", "libc",
           "glue", "libmilter", "other")


def milters(build):
    b = os.path.join(build, "bench")
    py = os.path.join(build, "venv", "bin", "python")
    return {
        "c": (os.path.join(b, "milter_pmcore"),
              [os.path.join(b, "milter_pmcore"), "{spec}"]),
        "python": (py, [py, os.path.join(REPO, "bench/python/"
                                         "trivial_milter.py"), "{spec}"]),
        "perl": (os.path.join(REPO, "perl/blib/arch/auto/Sendmail/PMilter/"
                              "PMilter.so"),
                 ["perl", "-I" + os.path.join(REPO, "perl/blib/lib"),
                  "-I" + os.path.join(REPO, "perl/blib/arch"),
                  os.path.join(REPO, "bench/perl/trivial_milter.pl"),
                  "{spec}"]),
        "libmilter": (os.path.join(b, "milter_libmilter"),
                      [os.path.join(b, "milter_libmilter"), "{spec}"]),
    }


def one_run(driver, argv, n, work, tag, fresh=False):
    """Run the milter under callgrind for n messages: (msgs, parts)."""
    spec = f"unix:{work}/{tag}.sock"
    out = os.path.join(work, f"cg.{tag}.%p")
    prof = set(os.listdir(work))
    log = open(os.path.join(work, f"{tag}.log"), "wb")
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes",
           f"--callgrind-out-file={out}"] + [
        spec if a == "{spec}" else a for a in argv]
    # A fixed hash seed: dict lookups cost a different amount under each
    # seed, and the 20- and 200-message runs are separate processes (about
    # 1.5k instructions a message of noise in the Python row otherwise).
    env = dict(os.environ, PMC_BENCH_DISPATCHER="loop", PYTHONHASHSEED="0")
    m = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=log, start_new_session=True, env=env)
    try:
        if not bl.wait_accepting(spec, 180, m):
            raise RuntimeError(f"{tag}: milter did not accept on {spec}")
        d = subprocess.run([driver, "--target", spec, "--msgs", str(n)] +
                           LOAD + (["--fresh"] if fresh else []),
                           capture_output=True, text=True, timeout=900)
        if d.returncode != 0:
            raise RuntimeError(f"{tag}: pmc-load exit {d.returncode}: "
                               f"{d.stderr.strip()[-500:]}")
        msgs = json.loads(d.stdout.strip().splitlines()[-1])["msgs"]
    finally:
        if m.poll() is None:
            os.killpg(m.pid, signal.SIGTERM)
        try:
            m.wait(timeout=120)  # the profile is written on the way out
        except subprocess.TimeoutExpired:
            os.killpg(m.pid, signal.SIGKILL)
            m.wait()
        log.close()
    parts = dict.fromkeys(cgsplit.PARTS, 0)
    files = [f for f in set(os.listdir(work)) - prof
             if f.startswith(f"cg.{tag}.")]
    if not files:
        raise RuntimeError(f"{tag}: no callgrind profile written")
    for f in files:
        path = os.path.join(work, f)
        got = cgsplit.split_file(path)
        if sum(got.values()) != cgsplit.totals_line(path):
            raise RuntimeError(f"{tag}: {f}: the split does not add up to "
                               "the profile's total")
        for k, v in got.items():
            parts[k] += v
    return msgs, parts


def per_message(r0, r1):
    (m0, p0), (m1, p1) = r0, r1
    row = {k: (p1[k] - p0[k]) / (m1 - m0) for k in cgsplit.PARTS}
    row["libpmcore"] = row["session"] + row["loop"] + row["client"]
    row["total"] = sum(row[k] for k in cgsplit.PARTS)
    return row


def fmt(v):
    return "" if v is None else f"{v / 1000:.1f}k" if abs(v) >= 50 else "0"


def table(rows):
    out = ["| milter | " + " | ".join(COLUMNS) + " |",
           "|---|" + "---:|" * len(COLUMNS)]
    for name, row in rows.items():
        out.append(f"| {name} | " + " | ".join(
            fmt(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    driver = os.path.join(build, "bench", "pmc-load")
    n0, n1 = (int(x) for x in os.environ.get("MSGS", "20 200").split())
    asked = os.environ.get("MILTERS")
    base = ["c", "python", "perl", "libmilter"]
    names = asked.split(",") if asked else base + [
        n + "-fresh" for n in base]
    if not shutil.which("valgrind"):
        sys.exit("bench-instr: valgrind is missing (scripts/setup.sh)")
    known = milters(build)
    rows, notes, ok = {}, [], True
    work = tempfile.mkdtemp(prefix="pmc-instr-")
    try:
        for name in names:
            fresh = name.endswith("-fresh")
            need, argv = known[name[:-len("-fresh")] if fresh else name]
            if not os.path.exists(need):
                notes.append(f"{name}: {need} is missing, not measured")
                if asked:
                    ok = False
                continue
            print(f"== {name}: {n0} and {n1} messages under callgrind",
                  file=sys.stderr, flush=True)
            try:
                r0 = one_run(driver, argv, n0, work, f"{name}.{n0}", fresh)
                r1 = one_run(driver, argv, n1, work, f"{name}.{n1}", fresh)
            except (RuntimeError, OSError, ValueError,
                    subprocess.TimeoutExpired) as e:
                notes.append(f"{name}: FAILED: {e}")
                ok = False
                continue
            rows[name] = per_message(r0, r1)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = ["## Instructions per message (make bench-instr)", "",
             f"callgrind, user space; ({n1} messages - {n0} messages) / "
             f"{n1 - n0} on one connection (-fresh rows: a connection per "
             "message); 4 KiB body, 12 headers, "
             "1 rcpt; every callback registered, one header added at EOM.",
             "libpmcore = session (src/proto) + loop (src/server); glue = "
             "the binding's own C, or the C milter's callbacks.", "",
             table(rows), ""]
    for row, col, limit in TARGETS:
        if row in rows:
            v = rows[row][col]
            lines.append(f"- {row} {col}: {v:,.0f} (target <= {limit:,}): "
                         f"{'met' if v <= limit else 'NOT met'}")
    lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(build, "bench"), exist_ok=True)
    with open(os.path.join(build, "bench", "bench-instr.md"), "w") as f:
        f.write(text)
    with open(os.path.join(build, "bench", "bench-instr.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
