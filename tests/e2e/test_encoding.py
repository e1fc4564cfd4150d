"""8-bit and Latin-1 header values round-trip through the milter."""
from harness import header_values, message, split_message

LATIN1 = 'caf\xe9 cr\xe8me br\xfbl\xe9e'.encode('latin-1')
UTF8 = 'caf\xe9 \u2615 \u00fcber'.encode('utf-8')


def test_8bit_and_latin1_headers(env, m):
    msg = message([('X-Latin1', LATIN1), ('X-Utf8', UTF8),
                   ('X-Change-Me', b'old')], mode='echo8')
    with env.client(m.name) as c:
        qid = c.send('sender@sink.test', ['one@sink.test'], msg)
    env.postfix.wait_removed(qid)
    headers, _ = split_message(env.sink.wait(qid).data)
    assert header_values(headers, 'X-Latin1') == [LATIN1]
    assert header_values(headers, 'X-Utf8') == [UTF8]
    # What the milter was given, handed back unchanged...
    assert header_values(headers, 'X-Echo-Latin1') == [LATIN1]
    assert header_values(headers, 'X-Echo-Utf8') == [UTF8]
    # ...and a Latin-1 value of its own.
    assert header_values(headers, 'X-Change-Me') == [b'\xe9t\xe9 \xa4']
