"""Milter.testctx.TestCtx's own action methods (pymilter's test double
API): test code may change the recorded result of the last message."""
import io

import pytest

import Milter
from Milter.testctx import TestCtx


class Tagger(Milter.Base):
    def eom(self):
        self.addheader('X-Tag', 'one')
        return Milter.CONTINUE


@pytest.fixture
def ctx():
    Milter.factory = Tagger
    c = TestCtx()
    assert c._connect() == Milter.CONTINUE
    yield c
    c._close()


def test_actions_need_a_message():
    c = TestCtx()
    for call in (lambda: c.addheader('X', 'v', -1),
                 lambda: c.chgheader('X', 1, 'v'),
                 lambda: c.addrcpt('<a@b>', None), lambda: c.delrcpt('<a@b>'),
                 lambda: c.replacebody(b'x'), lambda: c.chgfrom('<a@b>')):
        with pytest.raises(IOError, match='not called from eom'):
            call()
    with pytest.raises(RuntimeError, match='only be called from negotiate'):
        c.setsymlist(Milter.M_CONNECT, '{j}')
    with pytest.raises(TypeError):
        c.quarantine('why')


def test_actions_change_the_recorded_message(ctx):
    msg = b'Subject: s\nX-Old: 1\nX-Old: 2\n\nbody\n'
    assert ctx._feedFile(io.BytesIO(msg)) == Milter.CONTINUE
    assert ctx._msg['X-Tag'] == 'one'          # the milter's own change
    ctx.addheader('X-More', 'two')
    ctx.addheader('X-First', 'zero', 0)
    ctx.chgheader('X-Old', 2, '')
    ctx.chgheader('X-Old', 1, 'changed')
    assert ctx._msg.get_all('X-Old') == ['changed']
    assert ctx._msg['X-More'] == 'two' and ctx._headerschanged
    assert ctx._body.getvalue().startswith(b'X-First: zero\nSubject: s\n')
    ctx.replacebody(b'new ')
    ctx.replacebody(b'body\n')
    assert ctx._bodyreplaced and ctx._body.getvalue().endswith(
        b'\n\nnew body\n')
    ctx.addrcpt('<c@example.com>', 'NOTIFY=NEVER')
    ctx.delrcpt('<victim@lamb.com>')
    ctx.chgfrom('<new@example.com>')
    assert ctx._addrcpt[-1] == ('<c@example.com>', 'NOTIFY=NEVER')
    assert ctx._delrcpt == ['<victim@lamb.com>']
    assert ctx._envfromchanged and ctx._sender == '<new@example.com>'
    ctx.setreply('550', '5.7.1', 'no', 'really')
    assert ctx._reply == ('550', '5.7.1', 'no', 'really')
    ctx.progress()
    assert ctx._activity > 0
    assert Milter.testctx.utils is Milter.utils
