"""The macros Postfix sends, as the milter's getsymval sees them."""
from harness import header_values, message, split_message
from postfix import HOSTNAME


def test_macros_postfix_sends(env, m):
    with env.client(m.name) as c:
        qid = c.send('macro-sender@sink.test', ['macro-rcpt@sink.test'],
                     message(mode='macros'))
    env.postfix.wait_removed(qid)
    headers, _ = split_message(env.sink.wait(qid).data)
    seen = {}
    for v in header_values(headers, 'X-E2E-Macro'):
        stage, _, rest = v.decode().partition(' ')
        name, _, value = rest.partition('=')
        seen[stage, name] = value
    assert seen['eom', 'i'] == qid
    assert seen['connect', 'j'] == HOSTNAME
    assert seen['connect', '{daemon_name}'] == m.name
    assert seen['connect', '{daemon_addr}'] == '127.0.0.1'
    assert seen['connect', 'v'].startswith('Postfix 3.')
    assert '[127.0.0.1]' in seen['connect', '_']
    assert seen['mail', '{mail_addr}'] == 'macro-sender@sink.test'
    assert seen['rcpt', '{rcpt_addr}'] == 'macro-rcpt@sink.test'
