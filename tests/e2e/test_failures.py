"""A callback that dies or raises, and a milter stopped mid-message."""
import os
import signal
import threading
import time

import pytest

from harness import (RawSMTP, header_values, message, queue_id,
                     split_message)


def die_reply(m):
    """What the client gets: pymilter's exception-policy text; for Perl a
    TEMPFAIL without text, which Postfix words itself."""
    if m.lang == 'perl':
        return ['451 4.7.1 Service unavailable - try again later']
    return ['451 4.3.0 pymilter: untrapped exception in e2e-python']


def error_text(m, stage):
    if m.lang == 'perl':
        return f'e2e perl dies at {stage}'
    return f'RuntimeError: e2e python raises at {stage}'


def milter_header(env, qid):
    env.postfix.wait_removed(qid)
    headers, _ = split_message(env.sink.wait(qid).data)
    return header_values(headers, 'X-E2E-Milter')


@pytest.mark.parametrize('stage', ['rcpt', 'eom'])
def test_die_in_callback_then_next_message_passes(env, m, stage):
    with RawSMTP(env, m.name) as s:
        s.cmd('EHLO client.test')
        assert s.cmd('MAIL FROM:<sender@sink.test>')[0].startswith('250 ')
        if stage == 'rcpt':
            assert s.cmd('RCPT TO:<rcpt-die@sink.test>') == die_reply(m)
            assert s.cmd('RCPT TO:<one@sink.test>')[0].startswith('250 ')
            qid = queue_id(s.data(message()))
        else:
            assert s.cmd('RCPT TO:<one@sink.test>')[0].startswith('250 ')
            assert s.data(message(mode='eom-die')) == die_reply(m)
            # The next message on the same session passes the milter.
            assert s.cmd('MAIL FROM:<sender@sink.test>')[0].startswith('250 ')
            assert s.cmd('RCPT TO:<two@sink.test>')[0].startswith('250 ')
            qid = queue_id(s.data(message()))
    rcpts = 'one' if stage == 'rcpt' else 'two'
    assert milter_header(env, qid) == [
        f'{m.lang} msg=1 rcpts={rcpts}'.encode()]
    assert m.alive()
    assert error_text(m, stage) in m.log_tail(200)


@pytest.mark.stops_milter
def test_sigterm_with_message_in_flight(env, m):
    entered = os.path.join(m.ctl, 'slow-entered')
    release = os.path.join(m.ctl, 'slow-release')
    for f in (entered, release):
        if os.path.exists(f):
            os.unlink(f)
    result = {}

    def send():
        try:
            with RawSMTP(env, m.name) as s:
                s.cmd('EHLO client.test')
                s.cmd('MAIL FROM:<sender@sink.test>')
                s.cmd('RCPT TO:<one@sink.test>')
                result['reply'] = s.data(message(mode='slow addhdr'))
        except Exception as e:  # reported by the main thread
            result['error'] = e

    t = threading.Thread(target=send)
    t.start()
    try:
        end = time.monotonic() + 20
        while not os.path.exists(entered):
            assert time.monotonic() < end, 'the milter never reached eom'
            assert t.is_alive(), result
            time.sleep(0.02)
        m.proc.send_signal(signal.SIGTERM)
        # Let the milter act on the signal while the callback still runs:
        # it must wait for the message, not exit.
        time.sleep(0.5)
        assert m.proc.poll() is None, 'the milter exited with a message in flight'

    finally:
        open(release, 'w').close()
        t.join(60)
    assert 'error' not in result, result['error']
    qid = queue_id(result['reply'])
    env.postfix.wait_removed(qid)
    headers, _ = split_message(env.sink.wait(qid).data)
    assert header_values(headers, 'X-Added') == [f'added by {m.lang}'.encode()]
    # The stopped milter ends by itself, cleanly.
    assert m.proc.wait(20) == 0
