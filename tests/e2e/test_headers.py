"""Header modifications at end of message, as Postfix applies them."""
from harness import header_values, message, split_message


def deliver(env, m, mode, headers=()):
    with env.client(m.name) as c:
        qid = c.send('sender@sink.test', ['one@sink.test'],
                     message(headers, mode=mode))
    env.postfix.wait_removed(qid)
    headers, _ = split_message(env.sink.wait(qid).data)
    return headers


def names(headers):
    return [n for n, _ in headers]


def test_header_added(env, m):
    headers = deliver(env, m, 'addhdr')
    assert header_values(headers, 'X-Added') == [f'added by {m.lang}'.encode()]
    # addheader appends: after every header the message came with.
    assert names(headers)[-2:] == ['X-Added', 'X-E2E-Milter']


def test_header_inserted_at_index(env, m):
    headers = deliver(env, m, 'inshdr=2 seen')
    assert header_values(headers, 'X-Inserted') == [f'inserted by {m.lang}'.encode()]
    # The milter is not shown Postfix's own Received:, but Postfix counts
    # it (as Sendmail does): index 0 is before it, index 2 after From.
    seen = header_values(headers, 'X-E2E-Seen')[0].decode().split(',')
    assert seen[:3] == ['From', 'To', 'Subject'], seen
    got = names(headers)
    assert got[:5] == ['Received', 'From', 'X-Inserted', 'To', 'Subject'], got


def test_header_changed(env, m):
    headers = deliver(env, m, 'chghdr')
    assert header_values(headers, 'Subject') == [f'changed by {m.lang}'.encode()]


def test_header_deleted(env, m):
    headers = deliver(env, m, 'delhdr',
                      [('X-Drop', 'first'), ('X-Keep', 'k'), ('X-Drop', 'second')])
    # Index 2 names the second X-Drop; the first one stays.
    assert header_values(headers, 'X-Drop') == [b'first']
    assert header_values(headers, 'X-Keep') == [b'k']
