#!/usr/bin/env python3
"""Tests of benchlib's pure parts (run by `make test`): strace summary
parsing, medians, ratio tables, argument rewriting and /proc reading.
The parts that start milters are exercised by `make bench-c`."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

STRACE = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 44.69    0.134828           5     24027           read
 43.36    0.130820           5     22936           sendto
  3.09    0.009322           5      1689       596 accept4
------ ----------- ----------- --------- --------- ----------------
100.00    0.301696           5     48652       596 total
"""


def result(case, milter, values, syscalls=None, errors=0):
    r = bl.Result(bl.Case(case, []), bl.Milter(milter, ["x", "{spec}"]))
    r.runs = [{"msgs_per_s": v, "cpu_us_per_msg": 1e6 / v, "errors": errors,
               "driver_rc": 1 if errors else 0} for v in values]
    r.syscalls = syscalls
    return r


class BenchlibTest(unittest.TestCase):
    def test_strace_summary(self):
        total, detail = bl.parse_strace_summary(STRACE)
        self.assertEqual(total, 48652)
        self.assertEqual(detail, {"read": 24027, "sendto": 22936,
                                  "accept4": 1689})

    def test_strace_summary_empty(self):
        self.assertEqual(bl.parse_strace_summary(""), (0, {}))

    def test_median_and_value(self):
        r = result("c", "a", [300, 100, 200], syscalls=38.5)
        self.assertEqual(r.median("msgs_per_s"), 200)
        self.assertEqual(r.value("syscalls"), 38.5)
        self.assertIsNone(r.median("p50_us"))

    def test_tables_ratio_and_errors(self):
        res = [result("unix", "new", [300, 300, 300], 40),
               result("unix", "ref", [100, 100, 100], 200),
               result("tcp", "new", [50], errors=2),
               result("tcp", "ref", [100])]
        text = bl.markdown_tables(res, ["new", "ref"], "ref",
                                  ["msgs_per_s", "syscalls"])
        self.assertIn("| unix | 300 | 100 | 3.00× |", text)
        self.assertIn("| unix | 40.0 | 200 | 0.20× |", text)
        self.assertIn("| tcp | 50.0 ERR | 100 | 0.50× |", text)
        self.assertIn("| tcp | – | – | – |", text)
        summary = bl.summary_table(res, ["new", "ref"], "ref",
                                   ["msgs_per_s"])
        self.assertIn("| unix | 300 | 100 | 3.00× |", summary)

    def test_length_rewrite(self):
        b = bl.Bench("drv", [bl.Milter("m", ["{spec}"])], [])
        args = ["--conn", "8", "--msgs", "5", "--duration", "1", "--fresh"]
        self.assertEqual(b._with_length(args, msgs=50),
                         ["--conn", "8", "--fresh", "--msgs", "50"])
        self.assertEqual(b._with_length(args, duration=0.5),
                         ["--conn", "8", "--fresh", "--duration", "0.5"])

    def test_proc_readers(self):
        self.assertIn(os.getpid(), bl.process_tree(os.getpid()))
        self.assertGreaterEqual(bl.tree_cpu_seconds(os.getpid()), 0)
        self.assertGreater(bl.tree_peak_rss_kib(os.getpid()), 0)

    def test_free_port_and_spec(self):
        port = bl.free_port()
        self.assertTrue(0 < port < 65536)
        self.assertEqual(bl._spec_address(f"inet:{port}@127.0.0.1"),
                         (bl.socket.AF_INET, ("127.0.0.1", port)))
        self.assertEqual(bl._spec_address("unix:/tmp/x.sock"),
                         (bl.socket.AF_UNIX, "/tmp/x.sock"))
        self.assertFalse(bl.wait_accepting(f"inet:{port}@127.0.0.1", 0.2))


if __name__ == "__main__":
    r = unittest.main(exit=False, verbosity=1).result
    failed = len(r.failures) + len(r.errors)
    print(f"{r.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
