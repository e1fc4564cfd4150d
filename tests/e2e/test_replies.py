"""Reject and tempfail at every stage, with the milter's two-line text.

Postfix hands a refusal at connect or HELO to the client at MAIL FROM
(after a 554 greeting for a connect-time reject); the others answer the
command itself.  A refused MAIL, RCPT or message leaves the session usable.
"""
import pytest

from harness import RawSMTP, message, queue_id

STAGES = ['connect', 'helo', 'mail', 'rcpt', 'eom']
VERBS = {'reject': ('550', '5.7.1'), 'tempfail': ('451', '4.7.1')}


def expected(m, stage, verb):
    code, xcode = VERBS[verb]
    return [f'{code}-{xcode} e2e {m.lang} {verb}s at {stage}',
            f'{code} {xcode} second line from {m.lang}']


@pytest.mark.parametrize('verb', list(VERBS))
@pytest.mark.parametrize('stage', STAGES)
def test_refusal_with_multiline_text(env, m, stage, verb):
    want = expected(m, stage, verb)
    if stage == 'connect':
        m.set_connect_verdict(verb)
    try:
        with RawSMTP(env, m.name) as s:
            if stage == 'connect' and verb == 'reject':
                assert s.greeting[0].startswith('554 ')
            else:
                assert s.greeting[0].startswith('220 ')
            helo = f'helo-{verb}.test' if stage == 'helo' else 'client.test'
            assert s.cmd(f'EHLO {helo}')[-1].startswith('250 ')
            sender = f'mail-{verb}' if stage == 'mail' else 'sender'
            got = s.cmd(f'MAIL FROM:<{sender}@sink.test>')
            if stage in ('connect', 'helo', 'mail'):
                assert got == want
                if stage != 'mail':
                    return
                # The next transaction of the session is not refused.
                assert s.cmd('MAIL FROM:<sender@sink.test>')[0].startswith('250 ')
            else:
                assert got[0].startswith('250 ')
            rcpt = f'rcpt-{verb}' if stage == 'rcpt' else 'one'
            got = s.cmd(f'RCPT TO:<{rcpt}@sink.test>')
            if stage == 'rcpt':
                assert got == want
                assert s.cmd('RCPT TO:<one@sink.test>')[0].startswith('250 ')
            else:
                assert got[0].startswith('250 ')
            mode = f'eom-{verb}' if stage == 'eom' else None
            got = s.data(message(mode=mode))
            if stage == 'eom':
                assert got == want
                assert s.cmd('MAIL FROM:<sender@sink.test>')[0].startswith('250 ')
                assert s.cmd('RCPT TO:<one@sink.test>')[0].startswith('250 ')
                got = s.data(message())
            qid = queue_id(got)
        env.postfix.wait_removed(qid)
        assert env.sink.wait(qid).rcpts[0][0] == 'one@sink.test'
    finally:
        m.set_connect_verdict(None)
