"""Metrics with no code change: an unchanged example milter run with
PMCORE_METRICS set answers GET /metrics and /health, and the counts after
a known conversation are right, read with prometheus_client's own parser.
In-process, Milter.metrics.text() and its collector give the same
series."""
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving import env_with, free_port, pkt

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, '..', '..', 'examples', 'python',
                       'header_adder.py')


CONV = [
    pkt(b'O', struct.pack('>III', 6, 0x1ff, 0x1fffff)),
    pkt(b'C', b'mta\0' + b'4' + struct.pack('>H', 25) + b'192.0.2.1\0'),
    pkt(b'H', b'helo.example\0'),
    pkt(b'M', b'<a@x>\0'),
    pkt(b'R', b'<b@x>\0'),
    pkt(b'L', b'Subject\0hi\0'),
    pkt(b'N'),
    pkt(b'B', b'Hello.\r\n'),
    pkt(b'E'),
]


def connect(port, secs=10):
    end = time.time() + secs
    while True:
        try:
            return socket.create_connection(('127.0.0.1', port), timeout=5)
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.02)


def read_packets(s, want, after=None):
    """Read replies until one with a command byte in want (once a reply
    with the command byte 'after' came, when given)."""
    buf, codes = b'', []
    while True:
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack('>I',
                                                               buf[:4])[0]:
            n = struct.unpack('>I', buf[:4])[0]
            codes.append(buf[4:5])
            buf = buf[4 + n:]
            if codes[-1] in want and (after is None or after in codes):
                return codes
        more = s.recv(65536)
        assert more, 'the milter closed'
        buf += more


def converse(port, mods=b'h'):
    """The conversation, through the EOM verdict that follows the
    milter's first modification (earlier steps may be answered too: this
    MTA sends every step whatever was negotiated)."""
    s = connect(port)
    s.sendall(CONV[0])
    read_packets(s, (b'O',))
    s.sendall(b''.join(CONV[1:]))
    codes = read_packets(s, (b'c', b'a', b'r', b't', b'd', b'y'), mods)
    s.sendall(pkt(b'Q'))
    s.recv(1)
    s.close()
    return codes


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def example():
    port, mport = free_port(), free_port()
    p = subprocess.Popen(
        [sys.executable, EXAMPLE, 'inet:%d@127.0.0.1' % port],
        env=env_with(PMCORE_METRICS='inet:%d@127.0.0.1' % mport),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield p, port, 'http://127.0.0.1:%d' % mport
    p.terminate()
    p.communicate(timeout=15)


def test_unchanged_example_serves_metrics(example):
    p, port, base = example
    codes = converse(port)
    assert b'h' in codes  # the header_adder's X-Filtered-By
    end = time.time() + 5
    while True:
        status, text = get(base + '/metrics')
        got = samples(text)
        quit_ = got.get(('pmcore_connections_closed_total',
                         (('reason', 'quit'),)))
        if quit_ == 1 or time.time() > end:
            break
        time.sleep(0.05)
    assert status == 200
    assert quit_ == 1
    assert got[('pmcore_messages_total', ())] == 1
    assert got[('pmcore_connections_accepted_total', ())] == 1
    assert got[('pmcore_verdicts_total', (('verdict', 'continue'),))] >= 1
    assert got[('pmcore_modifications_total',
                (('kind', 'add_header'),))] == 2
    assert got[('pmcore_negotiations_total', (('mta_version', '6'),))] == 1
    assert got[('pmcore_callback_duration_seconds_count',
                (('callback', 'eom'),))] == 1
    status, text = get(base + '/health')
    assert (status, text) == (200, 'ok\n')


def test_bad_value_is_a_clear_error_at_start():
    p = subprocess.run(
        [sys.executable, EXAMPLE, 'inet:%d@127.0.0.1' % free_port()],
        env=env_with(PMCORE_METRICS='inet:notaport@127.0.0.1'),
        capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert 'PMCORE_METRICS=inet:notaport@127.0.0.1' in p.stderr


INPROC = textwrap.dedent('''
    import sys
    import Milter
    import Milter.metrics
    from prometheus_client import CollectorRegistry, generate_latest
    OUT, PORT = sys.argv[1], sys.argv[2]
    reg = CollectorRegistry()
    Milter.metrics.register(reg)
    assert Milter.metrics.text() is None
    class M(Milter.Base):
        def close(self):
            with open(OUT, 'w') as f:
                f.write(Milter.metrics.text())
                f.write('----\\n')
                f.write(generate_latest(reg).decode())
            return Milter.CONTINUE
    Milter.factory = M
    Milter.runmilter('inproc', 'inet:%s@127.0.0.1' % PORT, timeout=30)
''')


def test_in_process_text_and_collector(tmp_path):
    port = free_port()
    script = tmp_path / 'm.py'
    script.write_text(INPROC)
    out = tmp_path / 'out'
    p = subprocess.Popen([sys.executable, str(script), str(out), str(port)],
                         env=env_with(), stderr=subprocess.PIPE, text=True)
    try:
        converse(port, None)
        end = time.time() + 5
        while not (out.exists() and '----' in out.read_text()):
            assert time.time() < end, 'close() did not write'
            time.sleep(0.05)
    finally:
        p.terminate()
        _, err = p.communicate(timeout=15)
    raw, exposed = out.read_text().split('----\n')
    assert samples(raw)[('pmcore_connections_accepted_total', ())] == 1
    assert samples(raw)[('pmcore_health', ())] == 1
    assert 'pmcore_connections_accepted_total 1.0' in exposed
    assert 'pmcore_callback_duration_seconds_bucket{callback="helo"' \
        in exposed
