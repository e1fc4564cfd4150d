"""benchlib - run milters under pmc-load and compare them (stdlib only).

Used by `make bench-c` (bench/c/run.py) and by the Perl and Python
benchmarks.  Import it with

    sys.path.insert(0, "<repo>/bench/lib"); import benchlib

API
---
Milter(name, argv, env=None, cwd=None)
    A milter command.  Every element of argv equal to "{spec}" is replaced by
    the socket spec of the run (benchmark milters take it as argv[1], e.g.
    ["build/bench/milter_pmcore", "{spec}"] or
    ["perl", "bench/perl/milter.pl", "{spec}", "--x"]).  env entries are
    added to os.environ.  The milter must stop on SIGTERM; it is started in
    its own process group and everything in it is killed after 5 s.

Case(name, load_args, transport="unix", pin_milter=None, pin_driver=None)
    One row: pmc-load arguments other than --target/--json/--sync (for
    example ["--conn", "8", "--msgs", "400"]), the transport ("unix", "inet"
    or "inet6"; a fresh socket path or free port per run) and optional CPU
    lists for taskset ("0", "1", "0-1").

Bench(driver, milters, cases, rounds=3, reference=None, syscalls=False,
      syscall_msgs=None, syscall_duration=None, callgrind=False,
      callgrind_msgs=(200, 600), log=sys.stderr, start_timeout=20.0,
      run_timeout=600.0)
    .run() -> list[Result]
      Runs every case for every milter, `rounds` times, interleaved (round
      by round, the milter order rotating), each run on a freshly started
      milter.  A measured run:
        1. start the milter, wait until its socket accepts;
        2. start pmc-load with --json --sync; at its "ready" (warm-up done,
           connections open) read the CPU time of the milter's process tree
           from /proc (utime+stime of every live process, plus cutime+cstime
           of the top process for reaped children);
        3. at "done" read it again, and the peak RSS (VmHWM summed over the
           tree); let the driver QUIT; parse its JSON line.
      With syscalls=True, each (case, milter) gets one extra run per bench
      (not timed) with `strace -c -f -p` attached to every process of the
      tree between "ready" and "done"; syscall_msgs (messages per
      connection) and/or syscall_duration (seconds) replace the case's own
      --msgs/--duration for the traced run.
      With callgrind=True, two extra runs per (case, milter) under valgrind
      --tool=callgrind --trace-children=yes with callgrind_msgs[0] and [1]
      messages per connection; instructions/msg = difference of the totals
      over the difference of the message counts, so start-up cancels out.
    .results: the Result list after run().
    .ok: False if any run had a protocol error, failed to start, or the
      driver exited non-zero.

Result(case, milter, runs, syscalls, syscall_detail, instr_per_msg)
    runs: list of dicts, one per round, with the driver's JSON fields (msgs,
    errors, seconds, msgs_per_s, p50_us, p99_us, ...) plus cpu_us_per_msg,
    rss_kib and driver_rc.  syscalls: per message (or None);
    syscall_detail: {name: calls per message}.  instr_per_msg or None.
    .median(key) -> float or None: the median of that key over the runs.
    .value(metric) -> float or None: the median for a run key, or syscalls /
      instr_per_msg.

METRICS: dict name -> (label, higher_is_better) for "msgs_per_s",
    "p50_us", "p99_us", "cpu_us_per_msg", "rss_kib",
    "driver_cpu_us_per_msg", "syscalls", "instr_per_msg".

markdown_tables(results, milters, reference, metrics=None, title=None)
    -> str.  One Markdown table per metric: a row per case, a column per
    milter, then a "name / reference" ratio column for every other milter.
    Cells of runs with errors are marked "ERR".  metrics defaults to the
    metrics any result has values for.

summary_table(results, milters, reference, metrics) -> str
    One table with a column per (metric, milter) and the ratios; compact
    for two milters.

free_port(family="inet") -> int, wait_accepting(spec, timeout) -> bool,
parse_strace_summary(text) -> (total_calls, {syscall: calls}) are exposed
for scripts that need them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

METRICS = {
    "msgs_per_s": ("msgs/s", True),
    "p50_us": ("p50 latency µs", False),
    "p99_us": ("p99 latency µs", False),
    "cpu_us_per_msg": ("milter CPU µs/msg", False),
    "rss_kib": ("milter peak RSS KiB", False),
    "driver_cpu_us_per_msg": ("pmc-load CPU µs/msg", False),
    "syscalls": ("milter syscalls/msg", False),
    "instr_per_msg": ("milter instructions/msg", False),
}

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Milter:
    name: str
    argv: list
    env: dict | None = None
    cwd: str | None = None


@dataclasses.dataclass
class Case:
    name: str
    load_args: list
    transport: str = "unix"
    pin_milter: str | None = None
    pin_driver: str | None = None


@dataclasses.dataclass
class Result:
    case: Case
    milter: Milter
    runs: list = dataclasses.field(default_factory=list)
    syscalls: float | None = None
    syscall_detail: dict = dataclasses.field(default_factory=dict)
    instr_per_msg: float | None = None

    def errors(self):
        return sum(1 for r in self.runs
                   if r.get("errors", 1) or r.get("driver_rc", 1))

    def median(self, key):
        vals = [r[key] for r in self.runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def value(self, metric):
        if metric == "syscalls":
            return self.syscalls
        if metric == "instr_per_msg":
            return self.instr_per_msg
        return self.median(metric)


# --- processes ---------------------------------------------------------------

def _children_map():
    """ppid -> [pid] for every process now."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def process_tree(pid):
    """pid and all its descendants that are alive."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    # Fields after the command name (which may hold spaces), from field 3.
    return st[st.rindex(")") + 2:].split()


def tree_cpu_seconds(pid):
    """CPU seconds used so far by pid's live tree plus reaped children.
    The kernel scales utime+stime to the exact runtime, so the total is
    exact to a clock tick."""
    total = 0
    for p in process_tree(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        total += int(f[11]) + int(f[12])  # utime, stime
        if p == pid:
            total += int(f[13]) + int(f[14])  # cutime, cstime
    return total / CLK_TCK


def tree_peak_rss_kib(pid):
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def free_port(family="inet"):
    fam, host = ((socket.AF_INET6, "::1") if family == "inet6"
                 else (socket.AF_INET, "127.0.0.1"))
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _spec_address(spec):
    kind, _, rest = spec.partition(":")
    if kind in ("unix", "local"):
        return socket.AF_UNIX, rest
    port, _, host = rest.partition("@")
    host = host.strip("[]")
    fam = socket.AF_INET6 if kind == "inet6" else socket.AF_INET
    return fam, (host, int(port))


def wait_accepting(spec, timeout=20.0, proc=None):
    """True once a connection to spec succeeds; False on timeout or when
    proc (a Popen) exits first."""
    fam, addr = _spec_address(spec)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(addr)
                return True
        except OSError:
            time.sleep(0.02)
    return False


def _pin(cpus, argv):
    return (["taskset", "-c", cpus] + argv) if cpus else argv


class _Running:
    """A started milter; always stopped via stop()."""

    def __init__(self, milter, spec, prefix, workdir, pin):
        self.log_path = os.path.join(workdir, f"{_slug(milter.name)}.log")
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(milter.env or {})
        argv = [spec if a == "{spec}" else a for a in milter.argv]
        self.proc = subprocess.Popen(
            _pin(pin, prefix + argv), stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=self.log, env=env, cwd=milter.cwd,
            start_new_session=True)

    def stop(self, grace=0.3):
        """SIGTERM, then SIGKILL to the group after 'grace' seconds.  After
        a measured run a short grace is enough (libmilter notices SIGTERM
        only at its listener's 5 s tick); callgrind runs need the milter to
        exit by itself so the profile gets written."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait()
        self.log.close()

    def log_tail(self, n=10):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""


def _slug(s):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:60]


def parse_strace_summary(text):
    """(total calls, {syscall: calls}) from `strace -c` output."""
    detail, total = {}, 0
    for line in text.splitlines():
        f = line.split()
        if len(f) < 5 or not re.match(r"^[\d.]+$", f[0]):
            continue
        name = f[-1]
        # calls is the 4th column; an errors column may follow it.
        try:
            calls = int(f[3])
        except ValueError:
            continue
        if name == "total":
            total = calls
        else:
            detail[name] = calls
    if not total:
        total = sum(detail.values())
    return total, detail


def _readline(stream, timeout):
    r, _, _ = select.select([stream], [], [], timeout)
    if not r:
        return None
    return stream.readline()


class Bench:
    def __init__(self, driver, milters, cases, rounds=3, reference=None,
                 syscalls=False, syscall_msgs=None, syscall_duration=None,
                 callgrind=False, callgrind_msgs=(200, 600), log=sys.stderr,
                 start_timeout=20.0, run_timeout=600.0):
        self.driver = driver
        self.milters = list(milters)
        self.cases = list(cases)
        self.rounds = rounds
        self.reference = reference or self.milters[0].name
        self.syscalls = syscalls
        self.syscall_msgs = syscall_msgs
        self.syscall_duration = syscall_duration
        self.callgrind = callgrind
        self.callgrind_msgs = callgrind_msgs
        self.logf = log
        self.start_timeout = start_timeout
        self.run_timeout = run_timeout
        self.results = [Result(c, m) for c in self.cases
                        for m in self.milters]
        self.ok = True
        self.workdir = None

    def say(self, msg):
        if self.logf:
            print(msg, file=self.logf, flush=True)

    def _spec(self, transport, tag):
        if transport == "unix":
            return f"unix:{self.workdir}/{tag}.sock"
        if transport == "inet6":
            return f"inet6:{free_port('inet6')}@::1"
        return f"inet:{free_port('inet')}@127.0.0.1"

    def _fail(self, res, why, milter=None):
        self.ok = False
        self.say(f"  FAIL {res.case.name} / {res.milter.name}: {why}")
        if milter is not None:
            tail = milter.log_tail()
            if tail:
                self.say("  milter log:\n    " + tail.replace("\n", "\n    "))

    def _with_length(self, args, msgs=None, duration=None):
        """args with --msgs and/or --duration replaced by the given ones."""
        out, skip = [], False
        for i, a in enumerate(args):
            if skip:
                skip = False
                continue
            if a in ("--msgs", "--duration"):
                skip = True
                continue
            out.append(a)
        if msgs is not None:
            out += ["--msgs", str(msgs)]
        if duration is not None:
            out += ["--duration", str(duration)]
        return out

    def _one(self, res, mode="timed", msgs=None, prefix=(), duration=None):
        """One run.  mode: timed, strace or plain (no measurement of the
        milter; callgrind).  Returns the run dict or None."""
        case, milter = res.case, res.milter
        spec = self._spec(case.transport, _slug(milter.name))
        m = _Running(milter, spec, list(prefix), self.workdir,
                     case.pin_milter)
        drv = None
        try:
            # valgrind starts slowly: give it longer.
            if not wait_accepting(spec, self.start_timeout * (
                    5 if prefix else 1), m.proc):
                self._fail(res, f"milter did not accept on {spec}", m)
                return None
            args = list(case.load_args)
            if msgs is not None or duration is not None:
                args = self._with_length(args, msgs, duration)
            argv = _pin(case.pin_driver, [self.driver, "--target", spec] +
                        args + ["--json", "--sync"])
            drv = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
            line = _readline(drv.stdout, self.run_timeout)
            if line is None or line.strip() != "ready":
                self._fail(res, f"driver did not get ready ({line!r})", m)
                return None
            cpu0 = tree_cpu_seconds(m.proc.pid)
            tracer = None
            if mode == "strace":
                tracer = self._start_strace(m.proc.pid)
            drv.stdin.write("\n")
            drv.stdin.flush()
            line = _readline(drv.stdout, self.run_timeout)
            if line is None or line.strip() != "done":
                self._fail(res, f"driver did not finish ({line!r})", m)
                return None
            cpu1 = tree_cpu_seconds(m.proc.pid)
            rss = tree_peak_rss_kib(m.proc.pid)
            trace = self._stop_strace(tracer) if mode == "strace" else None
            drv.stdin.write("\n")
            drv.stdin.flush()
            out, _ = drv.communicate(timeout=self.run_timeout)
            rc = drv.returncode
            try:
                run = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                self._fail(res, f"driver printed no JSON (exit {rc})", m)
                return None
            run["driver_rc"] = rc
            msgs_done = run.get("msgs") or 0
            run["cpu_us_per_msg"] = ((cpu1 - cpu0) * 1e6 / msgs_done
                                     if msgs_done else None)
            run["rss_kib"] = rss
            if trace is not None:
                total, detail = trace
                run["syscalls"] = (total / msgs_done
                                   if msgs_done and total else None)
                run["syscall_detail"] = {
                    k: v / msgs_done for k, v in detail.items()} \
                    if msgs_done else {}
            if rc != 0 or run.get("errors"):
                self._fail(res, f"driver exit {rc}, {run.get('errors')} "
                                f"error(s): {run.get('first_error')}", m)
            return run
        except (OSError, subprocess.TimeoutExpired) as e:
            self._fail(res, f"{type(e).__name__}: {e}", m)
            return None
        finally:
            if drv is not None and drv.poll() is None:
                drv.kill()
                drv.wait()
            m.stop(grace=30 if mode == "plain" else 0.3)

    def _start_strace(self, pid):
        pids = process_tree(pid)
        out = os.path.join(self.workdir, f"strace.{pid}")
        argv = ["strace", "-c", "-f", "-o", out]
        for p in pids:
            argv += ["-p", str(p)]
        tr = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        # Measure only once every process is attached.
        attached = 0
        deadline = time.monotonic() + 10
        while attached < len(pids) and time.monotonic() < deadline:
            line = _readline(tr.stderr, deadline - time.monotonic())
            if not line:
                break
            if "attached" in line:
                attached += 1
        if attached < len(pids):
            # No counts rather than counts of part of the milter.
            self.say(f"  strace attached to {attached} of {len(pids)} "
                     "processes (ptrace not permitted?): no syscall counts")
            tr.kill()
            tr.communicate()
            return None
        return tr, out

    def _stop_strace(self, tracer):
        if tracer is None:
            return None
        tr, out = tracer
        tr.send_signal(signal.SIGINT)
        try:
            tr.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            tr.kill()
            tr.communicate()
        try:
            with open(out) as f:
                return parse_strace_summary(f.read())
        except OSError:
            return None

    def _callgrind(self, res):
        totals = []
        for n in self.callgrind_msgs:
            pattern = os.path.join(self.workdir,
                                   f"cg.{_slug(res.milter.name)}.{n}.%p")
            prefix = ["valgrind", "--tool=callgrind", "--trace-children=yes",
                      f"--callgrind-out-file={pattern}"]
            before = set(os.listdir(self.workdir))
            run = self._one(res, mode="plain", msgs=n, prefix=prefix)
            if run is None:
                return None
            total = 0
            for f in set(os.listdir(self.workdir)) - before:
                if not f.startswith("cg."):
                    continue
                with open(os.path.join(self.workdir, f)) as fh:
                    for line in fh:
                        if line.startswith(("summary:", "totals:")):
                            total += int(line.split()[1])
                            break
            totals.append((run["msgs"], total))
        (m0, t0), (m1, t1) = totals
        return (t1 - t0) / (m1 - m0) if m1 != m0 else None

    def run(self):
        self.workdir = tempfile.mkdtemp(prefix="pmc-bench-")
        try:
            return self._run_all()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _run_all(self):
        n = len(self.milters)
        for rnd in range(self.rounds):
            self.say(f"round {rnd + 1}/{self.rounds}")
            for case in self.cases:
                # Rotate the order so no milter always runs right after
                # another one's load.
                order = [self.milters[(i + rnd) % n] for i in range(n)]
                for milter in order:
                    res = self._result(case, milter)
                    run = self._one(res)
                    if run is not None:
                        res.runs.append(run)
                        self.say(f"  {case.name:<34} {milter.name:<18} "
                                 f"{run['msgs_per_s']:>9.0f} msgs/s "
                                 f"{_fmt(run['cpu_us_per_msg'])} µs CPU/msg")
        if self.syscalls:
            self.say("syscall counts (strace, not timed)")
            for res in self.results:
                run = self._one(res, mode="strace", msgs=self.syscall_msgs,
                                duration=self.syscall_duration)
                if run is not None and run.get("syscalls") is not None:
                    res.syscalls = run["syscalls"]
                    res.syscall_detail = run["syscall_detail"]
                    self.say(f"  {res.case.name:<34} {res.milter.name:<18} "
                             f"{res.syscalls:.1f} syscalls/msg")
        if self.callgrind:
            self.say("instructions (callgrind, not timed)")
            for res in self.results:
                res.instr_per_msg = self._callgrind(res)
                self.say(f"  {res.case.name:<34} {res.milter.name:<18} "
                         f"{_fmt(res.instr_per_msg)} instr/msg")
        return self.results

    def _result(self, case, milter):
        for r in self.results:
            if r.case is case and r.milter is milter:
                return r
        raise KeyError(case.name)

    def to_json(self):
        return [{"case": r.case.name, "milter": r.milter.name,
                 "runs": r.runs, "syscalls": r.syscalls,
                 "syscall_detail": r.syscall_detail,
                 "instr_per_msg": r.instr_per_msg} for r in self.results]


# --- tables ----------------------------------------------------------------

def env_num(name, default, kind=float):
    """A numeric knob from the environment; unset or empty means default."""
    v = os.environ.get(name)
    return kind(v) if v not in (None, "") else default


def find(results, case_name, milter):
    """The Result of one milter on one case, or None."""
    for r in results:
        if r.case.name == case_name and r.milter.name == milter:
            return r
    return None


def ratio(results, case_name, metric, a, b):
    """metric of milter a divided by milter b on one case, or None when
    either is missing or zero."""
    x, y = find(results, case_name, a), find(results, case_name, b)
    if not x or not y:
        return None
    vx, vy = x.value(metric), y.value(metric)
    if not vx or not vy:
        return None
    return vx / vy


class Acceptance:
    """An issue's targets checked on one run's figures, as a Markdown
    table: row() per check, markdown() at the end."""

    def __init__(self, title):
        self.lines = [f"## {title}", "", "| check | value | target | |",
                      "|---|---:|---:|---|"]

    def row(self, what, val, target, good):
        """good: the target's test, or None for a figure given for scale."""
        if val is None:
            self.lines.append(f"| {what} | – | {target} | not measured |")
        else:
            verdict = ("for scale" if good is None else
                       "pass" if good(val) else "FAIL")
            self.lines.append(f"| {what} | {val:.2f} | {target} | "
                              f"{verdict} |")

    def markdown(self):
        return "\n".join(self.lines + [""])


def _fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}".replace(",", " ")
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _index(results):
    cases, idx = [], {}
    for r in results:
        if r.case.name not in idx:
            cases.append(r.case.name)
            idx[r.case.name] = {}
        idx[r.case.name][r.milter.name] = r
    return cases, idx


def _cell(r, metric):
    if r is None:
        return "–"
    v = r.value(metric)
    s = _fmt(v)
    if metric not in ("syscalls", "instr_per_msg") and r.errors():
        s += " ERR"
    return s


def _ratio(r, ref, metric):
    if r is None or ref is None:
        return "–"
    a, b = r.value(metric), ref.value(metric)
    if a is None or not b:
        return "–"
    return f"{a / b:.2f}×"


def _metrics_present(results, metrics):
    if metrics is not None:
        return metrics
    return [m for m in METRICS
            if any(r.value(m) is not None for r in results)]


def markdown_tables(results, milters, reference, metrics=None, title=None):
    names = [m.name if isinstance(m, Milter) else m for m in milters]
    others = [n for n in names if n != reference]
    cases, idx = _index(results)
    out = []
    if title:
        out += [f"### {title}", ""]
    for metric in _metrics_present(results, metrics):
        label, higher = METRICS[metric]
        if not any(r.value(metric) is not None for r in results):
            continue
        better = "higher is better" if higher else "lower is better"
        out.append(f"**{label}** ({better}; median)")
        out.append("")
        head = ["case"] + names + [f"{o} / {reference}" for o in others]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" + "---:|" * (len(head) - 1))
        for c in cases:
            row = [c] + [_cell(idx[c].get(n), metric) for n in names]
            row += [_ratio(idx[c].get(o), idx[c].get(reference), metric)
                    for o in others]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


def summary_table(results, milters, reference, metrics):
    names = [m.name if isinstance(m, Milter) else m for m in milters]
    others = [n for n in names if n != reference]
    cases, idx = _index(results)
    head = ["case"]
    for metric in metrics:
        label = METRICS[metric][0]
        head += [f"{n} {label}" for n in names]
        head += [f"{o}/{reference}" for o in others]
    out = ["| " + " | ".join(head) + " |",
           "|" + "---|" + "---:|" * (len(head) - 1)]
    for c in cases:
        row = [c]
        for metric in metrics:
            row += [_cell(idx[c].get(n), metric) for n in names]
            row += [_ratio(idx[c].get(o), idx[c].get(reference), metric)
                    for o in others]
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"
