#!/usr/bin/env python3
"""cgsplit's accounting on a hand-written callgrind profile: self costs
only (a call's inclusive line is skipped), compressed names resolved,
inlined files counted for their layer, objects mapped to their parts."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cgsplit  # noqa: E402

PROFILE = """\
version: 1
events: Ir
ob=(1) /venv/lib/python3.11/site-packages/milter.cpython-311.so
fl=(1) libpmcore_vendor/src/server/loop.c
fn=(1) round_once
10 100
fi=(2) libpmcore_vendor/src/server/internal_server.h
11 7
fe=(1)
12 3
cfi=(3) libpmcore_vendor/src/proto/session.c
cfn=(2) pmc_session_feed
calls=1 20
13 5000
fl=(3)
fn=(2)
20 40
fl=(4) /usr/include/x86_64-linux-gnu/bits/string_fortified.h
fn=(3) copy_inline
5 6
fl=(5) src/milter/dispatch.c
fn=(4) pym_call
+2 9
* 1
ob=(2) /usr/lib/x86_64-linux-gnu/libc.so.6
fl=(6) ???
fn=(5) memcpy
0 11
ob=(3) /usr/bin/python3.11
fl=(6)
fn=(6) _PyEval_EvalFrameDefault
0 1000
ob=(4) /usr/lib/x86_64-linux-gnu/libz.so.1
fl=(6)
fn=(7) inflate
0 2
totals: 1179
"""


class Split(unittest.TestCase):
    def test_parts(self):
        got = cgsplit.split_lines(PROFILE.splitlines(True))
        self.assertEqual(got["loop"], 110)       # 100 + 7 inline + 3
        self.assertEqual(got["session"], 40)     # not the call's 5000
        self.assertEqual(got["glue"], 10 + 6)    # pym_call, our object's ???
        self.assertEqual(got["libc"], 11)
        self.assertEqual(got["interpreter"], 1000)
        self.assertEqual(got["other"], 2)
        self.assertEqual(sum(got.values()), 1179)


if __name__ == "__main__":
    unittest.main()
