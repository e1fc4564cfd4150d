"""The envelope sender changed, quarantine to the hold queue, and discard."""
from harness import message, split_message


def test_sender_changed(env, m):
    new = f'changed-{m.name}@sink.test'
    with env.client(m.name) as c:
        qid = c.send('sender@sink.test', ['rp@box.test', 'one@sink.test'],
                     message(mode=f'chgfrom={new}'))
    env.postfix.wait_removed(qid)
    # virtual(8) writes the envelope sender as Return-Path:.
    mine = [msg for msg in env.postfix.maildir_messages('rp')
            if f'id {qid}'.encode() in msg]
    assert len(mine) == 1
    assert mine[0].startswith(f'Return-Path: <{new}>\n'.encode())
    assert env.sink.wait(qid).mail_from == new


def test_quarantine_hold_queue(env, m):
    with env.client(m.name) as c:
        qid = c.send('sender@sink.test', ['one@sink.test'],
                     message(mode='quarantine'))
    # Postfix 3.7 logs the hold but not the milter's reason.
    env.postfix.wait_log(rf'{qid}: milter-hold: END-OF-MESSAGE from .*'
                         r'milter triggers HOLD action')
    assert env.postfix.held(qid)
    # The held queue file is the whole message, milter header included.
    content = env.postfix.postcat(qid)
    assert b'Subject: e2e test' in content
    assert f'X-E2E-Milter: {m.lang} msg=1'.encode() in content
    assert env.sink.for_queue_id(qid) == []


def test_discard(env, m):
    with env.client(m.name) as c:
        gone = c.send('sender@sink.test', ['one@sink.test'],
                      message(mode='eom-discard'))
        kept = c.send('sender@sink.test', ['one@sink.test'], message())
    env.postfix.wait_log(rf'{gone}: milter-discard: END-OF-MESSAGE from .*'
                         r'milter triggers DISCARD action')
    # The next message on the session is relayed; the discarded one never.
    env.sink.wait(kept)
    env.postfix.wait_removed(kept)
    assert env.sink.for_queue_id(gone) == []
