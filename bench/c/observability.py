#!/usr/bin/env python3
"""make bench-observability: what metrics and capture cost the trivial C
milter of make bench-c.  The same binary three ways, interleaved round by
round: as it is, with PMCORE_METRICS set (the /metrics endpoint up, scraped
once a second as Prometheus would), and with PMCORE_CAPTURE set (every
conversation written to a file).  Medians of msgs/s and milter CPU per
message over ROUNDS, pmc-load's default message (12 headers, 4 KiB body).

Knobs: ROUNDS (default 5), DURATION seconds per run (default 2).
"""
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import benchlib as bl  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def scraper(port, stop):
    """GET /metrics once a second while the runs last."""
    while not stop.wait(1.0):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                   timeout=1).read()
        except OSError:
            pass  # between runs nothing listens


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    b = os.path.join(build, "bench")
    driver = os.path.join(b, "pmc-load")
    pmc = os.path.join(b, "milter_pmcore")
    rounds = bl.env_num("ROUNDS", 5, int)
    dur = bl.env_num("DURATION", 2.0)
    mport = free_port()
    capdir = tempfile.mkdtemp(prefix="pmc-bench-cap-")
    base = dict(os.environ)
    base.pop("PMCORE_METRICS", None)
    base.pop("PMCORE_CAPTURE", None)
    off = bl.Milter("off", [pmc, "{spec}"], env=base)
    met = bl.Milter("metrics", [pmc, "{spec}"],
                    env=dict(base, PMCORE_METRICS="inet:%d@127.0.0.1" % mport))
    cap = bl.Milter("capture", [pmc, "{spec}"],
                    env=dict(base, PMCORE_CAPTURE=capdir + ",files=200"))
    cases = [bl.Case("unix conn %d" % c, ["--conn", str(c), "--duration",
                                          str(dur), "--expect-header",
                                          "X-PMC-Bench"])
             for c in (8, 64)]
    stop = threading.Event()
    t = threading.Thread(target=scraper, args=(mport, stop), daemon=True)
    t.start()
    try:
        bench = bl.Bench(driver, [off, met, cap], cases, rounds=rounds,
                         reference="off")
        res = bench.run()
    finally:
        stop.set()
        shutil.rmtree(capdir, ignore_errors=True)
    print(bl.markdown_tables(res, [off, met, cap], "off",
                             metrics=["msgs_per_s", "cpu_us_per_msg"],
                             title="make bench-observability: %d rounds of "
                                   "%g s, load before %.1f" %
                                   (rounds, dur, os.getloadavg()[0])))
    return 0 if bench.ok else 1


if __name__ == "__main__":
    sys.exit(main())
