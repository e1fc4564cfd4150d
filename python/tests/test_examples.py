"""TestCtx tests of the sample milters in examples/python/."""
import io

import Milter
from Milter.testctx import TestCtx

import async_milter
import body_rewrite
import header_adder
import recipient_check

MSG = (b'From: alice@example.org\nTo: bob@example.com\nSubject: test\n\n'
       b'Hello,\ncard 4111 1111 1111 1111 please.\n')


def run(klass, *rcpts, ip='192.0.2.9'):
    Milter.factory = klass
    ctx = TestCtx()
    assert ctx._connect(ip=ip) in (Milter.CONTINUE, Milter.NOREPLY)
    rc = ctx._feedFile(io.BytesIO(MSG), 'alice@example.org', *rcpts)
    return ctx, rc


def test_header_adder():
    ctx, rc = run(header_adder.HeaderAdder, 'bob@example.com')
    assert rc == Milter.CONTINUE
    assert ctx._headerschanged
    msg = ctx._msg
    assert msg['X-Filtered-By'] == 'header_adder'
    assert msg['X-Client-Addr'] == '192.0.2.9'
    # only eom (and connect, no reply) were negotiated
    proto = ctx._protocol
    assert proto & Milter.P_NOMAIL and proto & Milter.P_NOHDRS
    assert proto & Milter.P_NR_CONN


def test_header_adder_ipv6():
    ctx, rc = run(header_adder.HeaderAdder, 'bob@example.com',
                  ip='2001:db8::25')
    assert ctx._msg['X-Client-Addr'] == '2001:db8::25'


def test_recipient_check_rejects_foreign():
    ctx, rc = run(recipient_check.RecipientCheck, 'eve@elsewhere.net')
    assert rc == Milter.REJECT
    assert ctx._reply == ('550', '5.7.1', 'relaying to elsewhere.net denied')


def test_recipient_check_accepts_local():
    ctx, rc = run(recipient_check.RecipientCheck, 'bob@example.com',
                  'carol@example.org')
    assert rc == Milter.CONTINUE
    assert ctx._msg['X-Local-Recipients'] == '2'


def test_recipient_check_counts_per_message():
    ctx, rc = run(recipient_check.RecipientCheck, 'bob@example.com',
                  'carol@example.org')
    assert ctx._msg['X-Local-Recipients'] == '2'
    # A second message on the same connection starts from zero.
    rc = ctx._feedFile(io.BytesIO(MSG), 'alice@example.org',
                       'bob@example.com')
    assert rc == Milter.CONTINUE
    assert ctx._msg['X-Local-Recipients'] == '1'


def test_body_rewrite():
    ctx, rc = run(body_rewrite.BodyRewrite, 'bob@example.com')
    assert rc == Milter.CONTINUE
    assert ctx._bodyreplaced
    body = ctx._body.getvalue()
    assert b'4111' not in body and b'[card number removed]' in body
    assert ctx._msg['X-Body-Rewritten'] == 'yes'


def test_body_rewrite_untouched():
    Milter.factory = body_rewrite.BodyRewrite
    ctx = TestCtx()
    ctx._connect()
    rc = ctx._feedFile(io.BytesIO(b'Subject: x\n\nnothing here\n'))
    assert rc == Milter.CONTINUE
    assert not ctx._bodyreplaced and not ctx._headerschanged


def test_async_milter_stamps_known_senders():
    ctx, rc = run(async_milter.AsyncScore, 'bob@example.com')
    assert rc == Milter.CONTINUE
    assert ctx._msg['X-Sender-Score'] == '90'
    # only envfrom and eom are callbacks: the rest is not sent
    assert ctx._protocol & Milter.P_NOHDRS and ctx._protocol & Milter.P_NORCPT


def test_async_milter_rejects_poor_reputation():
    Milter.factory = async_milter.AsyncScore
    ctx = TestCtx()
    ctx._connect()
    rc = ctx._feedFile(io.BytesIO(MSG), 'x@spam.example', 'bob@example.com')
    assert rc == Milter.REJECT
    assert ctx._reply == ('550', '5.7.1',
                          'sender domain spam.example has a poor reputation')
