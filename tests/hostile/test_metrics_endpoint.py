"""The /metrics and /health endpoint of each example milter (C, Perl under
its default and loop dispatchers, Python), unchanged and started with only
PMCORE_METRICS in its environment: the counts after known conversations,
the health, and hostile HTTP peers (a request cut at every byte, a silent
peer, an endless request, a flood of connections).  After each case the
milter holds the descriptors it held before and still answers."""
import os
import socket
import time

import pytest

import hostile as h
from conftest import SERVERS


def get(port, path='/metrics', timeout=5.0):
    """(status, body) of GET path over a fresh connection."""
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    try:
        s.sendall(b'GET ' + path.encode() + b' HTTP/1.0\r\n\r\n')
        data = b''
        while True:
            more = s.recv(65536)
            if not more:
                break
            data += more
    finally:
        s.close()
    head, _, body = data.partition(b'\r\n\r\n')
    return int(head.split(b' ')[1]), body.decode()


def value(text, series):
    for line in text.splitlines():
        name, _, v = line.rpartition(' ')
        if name == series:
            return float(v)
    return None


@pytest.fixture(scope='module', params=SERVERS)
def msrv(request, tmp_path_factory):
    kind = h.kinds()[request.param]
    mport = h.free_port()
    kind.env = dict(kind.env, PMCORE_METRICS='inet:%d@127.0.0.1' % mport)
    srv = h.Server(kind, 'tcp', str(tmp_path_factory.mktemp(kind.name)))
    srv.start()  # one conversation, then the baseline
    srv.mport = mport
    yield srv
    srv.kill()


def counted(srv, series, want, secs=5.0):
    end = time.monotonic() + secs
    while True:
        status, text = get(srv.mport)
        got = value(text, series)
        if got == want or time.monotonic() > end:
            return status, text, got
        time.sleep(0.05)


def test_counts_after_known_conversations(msrv):
    # start() ran one conversation of one message; three more here.
    for _ in range(3):
        h.conversation(msrv)
    status, text, quit_ = counted(
        msrv, 'pmcore_connections_closed_total{reason="quit"}', 4)
    assert status == 200
    assert quit_ == 4
    assert value(text, 'pmcore_messages_total') == 4
    assert value(text, 'pmcore_connections_accepted_total') == 4
    assert value(text, 'pmcore_negotiations_total{mta_version="6"}') == 4
    assert value(text, 'pmcore_callback_duration_seconds_count'
                       '{callback="eom"}') == 4
    assert value(text, 'pmcore_modifications_total{kind="add_header"}') >= 4
    assert get(msrv.mport, '/health') == (200, 'ok\n')


def test_hostile_http_peers(msrv):
    req = b'GET /metrics HTTP/1.0\r\n\r\n'
    get(msrv.mport)
    base = msrv.fds()
    for cut in range(len(req)):
        s = socket.create_connection(('127.0.0.1', msrv.mport), timeout=5)
        s.sendall(req[:cut])
        s.close()
    assert get(msrv.mport, '/health')[0] == 200
    silent = socket.create_connection(('127.0.0.1', msrv.mport), timeout=5)
    t0 = time.monotonic()
    assert get(msrv.mport, '/health')[0] == 200
    assert time.monotonic() - t0 < 3.5, 'a silent peer held the endpoint'
    silent.close()
    endless = socket.create_connection(('127.0.0.1', msrv.mport), timeout=5)
    try:
        endless.sendall(b'A' * 8192)
        assert endless.recv(1) == b''  # closed unanswered
    except ConnectionResetError:
        pass
    endless.close()
    # 100 silent peers held open: a scraper behind them is still answered
    # at once (the oldest silent peer gives its slot up).
    flood = [socket.create_connection(('127.0.0.1', msrv.mport), timeout=5)
             for _ in range(100)]
    t0 = time.monotonic()
    assert get(msrv.mport)[0] == 200
    assert time.monotonic() - t0 < 1.0, 'silent peers held the endpoint'
    for s in flood:
        s.close()
    assert get(msrv.mport)[0] == 200
    end = time.monotonic() + 5
    while msrv.fds() > base + 2 and time.monotonic() < end:
        time.sleep(0.05)
    assert msrv.fds() <= base + 2, (msrv.fds(), base)
    assert msrv.alive()
    h.conversation(msrv)


def test_bad_value_stops_the_start(tmp_path):
    for name in SERVERS:
        kind = h.kinds()[name]
        env = dict(os.environ, **kind.env)
        env['PMCORE_METRICS'] = 'inet:notaport@127.0.0.1'
        import subprocess
        p = subprocess.run(kind.argv + ['inet:%d@127.0.0.1' % h.free_port()],
                           cwd=h.ROOT, env=env, capture_output=True,
                           timeout=60)
        assert p.returncode != 0, name
        assert b'PMCORE_METRICS=inet:notaport@127.0.0.1' in p.stdout + \
            p.stderr, (name, p.stdout, p.stderr)
