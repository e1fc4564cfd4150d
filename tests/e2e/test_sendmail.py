"""The C, Perl and Python milters behind a real Sendmail (sendmail.py).

Every kind of modification and verdict, as Sendmail applies them: headers
added, inserted, changed and deleted; the body replaced; recipients added
and deleted; the sender changed; quarantine; reject, tempfail and discard.
Sendmail relays each message to the sink, so what it did is read from the
relayed transaction.
"""
import os
import time

import pytest

from harness import (RawSMTP, header_values, make_body, message,
                     split_message)
from sendmail import SM_MILTERS, SendmailEnv, available


@pytest.fixture(scope='module')
def sm_env():
    missing = available()
    if missing:
        if os.environ.get('CI'):
            pytest.fail(f'sendmail e2e cannot run: needs {missing}')
        pytest.skip(f'needs {missing}')
    root = os.environ.get('E2E_ROOT')
    if not root:
        pytest.skip('run through tests/e2e/run.sh (E2E_ROOT)')
    e = SendmailEnv(root)
    try:
        e.start()
        yield e
    finally:
        e.stop()


@pytest.fixture(params=list(SM_MILTERS))
def sm(request, sm_env):
    milter = sm_env.milters[request.param]
    milter.ensure_running()
    yield milter
    if not milter.alive():
        pytest.fail(f'milter {milter.name} died:\n{milter.log_tail()}')


def relay(env, m, mode, rcpts=('one@sink.test',), headers=(), sender=None):
    """Send one message; the transaction Sendmail relayed for it."""
    with env.client(m.name) as c:
        qid = c.send(sender or 'sender@sink.test', list(rcpts),
                     message(headers, mode=mode))
    tx = env.sink.wait(qid)
    assert len(env.sink.for_queue_id(qid)) == 1, 'one relay transaction'
    return tx


def relayed_headers(env, m, mode, headers=()):
    got, _ = split_message(relay(env, m, mode, headers=headers).data)
    return got


def test_header_added(sm_env, sm):
    headers = relayed_headers(sm_env, sm, 'addhdr')
    assert header_values(headers, 'X-Added') == [f'added by {sm.lang}'.encode()]
    assert [n for n, _ in headers][-2:] == ['X-Added', 'X-E2E-Milter']
    assert header_values(headers, 'X-E2E-Milter') == [
        f'{sm.lang} msg=1 rcpts=one'.encode()]


@pytest.mark.parametrize('index', [0, 1])
def test_header_inserted_at_index(sm_env, sm, index):
    headers = relayed_headers(sm_env, sm, f'inshdr={index} seen')
    seen = header_values(headers, 'X-E2E-Seen')[0].decode().split(',')
    # Sendmail, like Postfix, shows the milter the client's headers only,
    # but counts its own Received: in the index: 0 is before it, 1 after.
    # (It also counts the headers of its configuration it has not filled
    # in yet, so the index of a client header is Sendmail's own business.)
    assert seen == ['From', 'To', 'Subject', 'X-E2E-Mode'], seen
    names = [n for n, _ in headers]
    want = (['X-Inserted', 'Received', 'Date'] if index == 0
            else ['Received', 'X-Inserted', 'Date'])
    assert names[:3] == want, names
    assert header_values(headers, 'X-Inserted') == [
        f'inserted by {sm.lang}'.encode()]


def test_header_changed_and_deleted(sm_env, sm):
    headers = relayed_headers(
        sm_env, sm, 'chghdr delhdr',
        [('X-Drop', 'first'), ('X-Keep', 'k'), ('X-Drop', 'second')])
    assert header_values(headers, 'Subject') == [f'changed by {sm.lang}'.encode()]
    assert header_values(headers, 'X-Drop') == [b'first']
    assert header_values(headers, 'X-Keep') == [b'k']


@pytest.mark.parametrize('size', [27, 80 * 1024])
def test_body_replaced(sm_env, sm, size):
    tx = relay(sm_env, sm, f'body={size}')
    _, body = split_message(tx.data)
    assert body == make_body(size)


def test_recipients_added_and_deleted(sm_env, sm):
    tx = relay(sm_env, sm, 'addrcpt=3 delrcpt',
               rcpts=['keep@sink.test', 'del-1@sink.test', 'del-2@sink.test'])
    assert sorted(a for a, _ in tx.rcpts) == [
        'added-001@sink.test', 'added-002@sink.test', 'added-003@sink.test',
        'keep@sink.test']


def test_recipient_added_with_esmtp_args(sm_env, sm):
    tx = relay(sm_env, sm, 'addrcpt_par=NOTIFY=SUCCESS,DELAY')
    rcpts = dict(tx.rcpts)
    assert sorted(rcpts) == ['one@sink.test', 'par@sink.test']
    assert 'NOTIFY=SUCCESS,DELAY' in rcpts['par@sink.test']


def test_sender_changed(sm_env, sm):
    new = f'changed-{sm.lang}@sink.test'
    assert relay(sm_env, sm, f'chgfrom={new}').mail_from == new


def test_quarantine(sm_env, sm):
    with sm_env.client(sm.name) as c:
        qid = c.send('sender@sink.test', ['one@sink.test'],
                     message(mode='quarantine'))
    # Sendmail keeps a quarantined envelope as hf (not qf), with the reason
    # on its q line, and does not deliver it.
    hf = sm_env.sendmail.queue_file('hf', qid)
    assert hf is not None, sorted(os.listdir(sm_env.sendmail.queue))
    assert f'\nqe2e {sm.lang} quarantine\n'.encode() in hf
    assert sm_env.sendmail.queue_file('qf', qid) is None
    assert b'X-E2E-Milter' in hf  # the milter's header is in the envelope
    assert sm_env.sink.for_queue_id(qid) == []


VERBS = {'reject': ('550', '5.7.1'), 'tempfail': ('451', '4.7.1')}


def lines(m, stage, verb, addr=None):
    """The milter's two lines as Sendmail sends them: a permanent refusal of
    MAIL or RCPT gets the address put before the text, "<ADDR>... "."""
    code, xcode = VERBS[verb]
    who = f'<{addr}>... ' if addr and verb == 'reject' else ''
    return [f'{code}-{xcode} {who}e2e {m.lang} {verb}s at {stage}',
            f'{code} {xcode} second line from {m.lang}']


@pytest.mark.parametrize('verb', list(VERBS))
def test_refusals(sm_env, sm, verb):
    """A refused MAIL, RCPT and message, each with the milter's two lines;
    the session goes on after each."""
    with RawSMTP(sm_env, sm.name) as s:
        assert s.cmd('EHLO client.test')[-1].startswith('250 ')
        sender, rcpt = f'mail-{verb}@sink.test', f'rcpt-{verb}@sink.test'
        assert s.cmd(f'MAIL FROM:<{sender}>') == lines(sm, 'mail', verb, sender)
        assert s.cmd('MAIL FROM:<sender@sink.test>')[0].startswith('250 ')
        assert s.cmd(f'RCPT TO:<{rcpt}>') == lines(sm, 'rcpt', verb, rcpt)
        assert s.cmd('RCPT TO:<one@sink.test>')[0].startswith('250 ')
        assert s.data(message(mode=f'eom-{verb}')) == lines(sm, 'eom', verb)
        # The next message passes.
        assert s.cmd('MAIL FROM:<sender@sink.test>')[0].startswith('250 ')
        assert s.cmd('RCPT TO:<one@sink.test>')[0].startswith('250 ')
        reply = s.data(message())
        assert reply[-1].startswith('250 '), reply
    qid = reply[-1].split()[2]
    headers, _ = split_message(sm_env.sink.wait(qid).data)
    # The refused message still counted as one on this connection.
    assert header_values(headers, 'X-E2E-Milter') == [
        f'{sm.lang} msg=1 rcpts=one'.encode()]


def test_discard(sm_env, sm):
    with sm_env.client(sm.name) as c:
        gone = c.send('sender@sink.test', ['one@sink.test'],
                      message(mode='eom-discard'))
        kept = c.send('sender@sink.test', ['one@sink.test'], message())
    # Accepted, then dropped: never relayed.  (Had Sendmail kept it, its
    # queue files would stay until the sink had taken it.)
    tx = sm_env.sink.wait(kept)
    sm_env.sendmail.wait_queue_empty(gone)
    assert sm_env.sink.for_queue_id(gone) == []
    # The discarded message was not counted as done by the milter.
    assert header_values(split_message(tx.data)[0], 'X-E2E-Milter') == [
        f'{sm.lang} msg=1 rcpts=one'.encode()]


def test_messages_on_one_connection(sm_env, sm):
    """Sendmail sends ABORT after each accepted message: per-message state
    resets and the next message is counted on the same connection."""
    with sm_env.client(sm.name) as c:
        qids = [c.send('sender@sink.test', [f'{n}@sink.test'],
                       message(mode='addhdr' if n == 'two' else None))
                for n in ('one', 'two', 'three')]
    got = []
    for n, qid in enumerate(qids, 1):
        headers, _ = split_message(sm_env.sink.wait(qid).data)
        got.append((header_values(headers, 'X-E2E-Milter'),
                    len(header_values(headers, 'X-Added'))))
    assert got == [([f'{sm.lang} msg={n} rcpts={r}'.encode()], int(n == 2))
                   for n, r in ((1, 'one'), (2, 'two'), (3, 'three'))]
