"""Envelope recipients added (with and without ESMTP arguments) and deleted."""
from harness import message


def relay(env, m, rcpts, mode):
    with env.client(m.name) as c:
        qid = c.send('sender@sink.test', rcpts, message(mode=mode))
    env.postfix.wait_removed(qid)
    txs = env.sink.for_queue_id(qid)
    assert len(txs) == 1, 'expected one relay transaction'
    return txs[0].rcpts


def test_recipients_added_100(env, m):
    rcpts = relay(env, m, ['one@sink.test'], 'addrcpt=100')
    added = [f'added-{i:03d}@sink.test' for i in range(1, 101)]
    assert sorted(a for a, _ in rcpts) == sorted(['one@sink.test', *added])


def test_recipient_added_with_esmtp_args(env, m):
    rcpts = dict(relay(env, m, ['one@sink.test'],
                       'addrcpt_par=NOTIFY=SUCCESS,DELAY'))
    assert sorted(rcpts) == ['one@sink.test', 'par@sink.test']
    # Postfix relays the NOTIFY the milter gave; the original recipient
    # has none.
    assert 'NOTIFY=SUCCESS,DELAY' in rcpts['par@sink.test']
    assert not [a for a in rcpts['one@sink.test'] if a.startswith('NOTIFY=')]


def test_recipients_deleted_100(env, m):
    doomed = [f'del-{i:03d}@sink.test' for i in range(1, 101)]
    rcpts = relay(env, m, ['keep@sink.test', *doomed], 'delrcpt')
    assert [a for a, _ in rcpts] == ['keep@sink.test']
