"""Body replacement of several sizes, delivered byte for byte."""
import pytest

from harness import make_body, message, split_message


@pytest.mark.parametrize('size', [27, 80 * 1024, 1024 * 1024],
                         ids=['27B', '80KiB', '1MiB'])
def test_body_replaced(env, m, size):
    expected = make_body(size)
    assert len(expected) == size
    with env.client(m.name) as c:
        qid = c.send('sender@sink.test', ['one@sink.test'],
                     message(mode=f'body={size}'))
    env.postfix.wait_removed(qid, timeout=60)
    _, body = split_message(env.sink.wait(qid).data)
    assert len(body) == size
    assert body == expected
