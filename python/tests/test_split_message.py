"""Milter.testctx.split_message against the shared splitting cases
(tests/cli/files/split.cases, docs/message-splitting.md): the same fields
as the engine's client sends, and the body left as the text has it."""
import os
import sys

import pytest

from Milter.testctx import split_message

TOP = os.path.join(os.path.dirname(__file__), '..', '..')
sys.path.insert(0, os.path.join(TOP, 'tests', 'cli'))
from split_cases import read_cases  # noqa: E402

CASES = [c for c in read_cases(os.path.join(TOP, 'tests', 'cli', 'files',
                                             'split.cases'))
         if not c['leadspc']]  # TestCtx never negotiates HDR_LEADSPC


def test_cases_found():
    assert len(CASES) >= 20


def lf(b):
    return b.replace(b'\r\n', b'\n')


@pytest.mark.parametrize('case', CASES, ids=[c['name'] for c in CASES])
def test_split(case):
    headers, body = split_message(case['msg'])
    want = [(e[1], e[2]) for e in case['events'] if e[0] == 'header']
    assert headers == want
    # TestCtx feeds the body as the file has it (pymilter's TestCtx does
    # too): the same lines as the MTA's CR LF body, the line ends aside.
    assert case['msg'].endswith(body)
    assert lf(body).rstrip(b'\r\n') == lf(case['body']).rstrip(b'\n')


def test_str_and_folding():
    headers, body = split_message('Subject: a\n b\n\nbody é\n')
    assert headers == [(b'Subject', b'a\n b')]
    assert body == 'body é\n'.encode('utf-8')


def test_not_bytes():
    with pytest.raises(TypeError):
        split_message(42)
