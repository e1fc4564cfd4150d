"""Several messages and RSETs on one SMTP session: no state leaks."""
from harness import header_values, message, split_message


def milter_header(env, qid):
    env.postfix.wait_removed(qid)
    headers, _ = split_message(env.sink.wait(qid).data)
    return headers, header_values(headers, 'X-E2E-Milter')


def test_several_messages_and_rset(env, m):
    with env.client(m.name) as c:
        q1 = c.send('s1@sink.test', ['a@sink.test'], message(mode='addhdr'))
        # A transaction dropped by RSET after its recipients: the milter
        # is told to abort and must forget them.
        c.smtp.mail('s2@sink.test')
        c.smtp.rcpt('dropped@sink.test')
        c.rset()
        q2 = c.send('s3@sink.test', ['b@sink.test', 'c@sink.test'], message())
        c.rset()
        q3 = c.send('s4@sink.test', ['d@sink.test'], message(mode='chghdr'))
    assert len({q1, q2, q3}) == 3
    h1, x1 = milter_header(env, q1)
    h2, x2 = milter_header(env, q2)
    h3, x3 = milter_header(env, q3)
    lang = m.lang.encode()
    assert x1 == [lang + b' msg=1 rcpts=a']
    assert x2 == [lang + b' msg=2 rcpts=b,c']
    assert x3 == [lang + b' msg=3 rcpts=d']
    # Each message's mode applied to that message only.
    assert header_values(h1, 'X-Added') and not header_values(h2, 'X-Added')
    assert header_values(h2, 'Subject') == [b'e2e test']
    assert header_values(h3, 'Subject') == [b'changed by ' + lang]
