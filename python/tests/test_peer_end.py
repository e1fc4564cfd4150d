"""The MTA's end, wherever it comes: a conversation cut at every byte by a
FIN, a half-close or a reset, against the pool server.  Every Milter.Base
object the factory made gets close() exactly once, the process's
descriptors come back, and a stop with an MTA gone inside a message does
not wait for the drain deadline."""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from serving import env_with, free_port, pkt, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


# The options packet: the milter's object is made once it is whole.
OPTNEG = pkt(b'O', struct.pack('>III', 6, 0x1ff, 0x1fffff))
CONV = b''.join([
    OPTNEG,
    pkt(b'D', b'Cj\0mx\0'),
    pkt(b'C', b'mta\0' + b'4' + struct.pack('>H', 25) + b'192.0.2.1\0'),
    pkt(b'H', b'helo.example\0'),
    pkt(b'M', b'<a@x>\0'),
    pkt(b'R', b'<b@x>\0'),
    pkt(b'T'),
    pkt(b'L', b'Subject\0hi\0'),
    pkt(b'N'),
    pkt(b'B', b'Hello.\r\n'),
    pkt(b'E'),
    pkt(b'Q'),
])


@pytest.fixture
def server(tmp_path):
    port = free_port()
    events = str(tmp_path / 'events')
    p = subprocess.Popen([sys.executable, os.path.join(HERE,
                                                       'peer_end_helper.py'),
                          str(port), events],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env_with(), text=True)
    assert p.stdout.readline().strip() == 'ready'
    assert wait_until(lambda: _connects(port), 5)
    yield p, port, events
    if p.poll() is None:
        p.kill()
    p.communicate()


def _connects(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        return True
    except OSError:
        return False


def counts(events):
    try:
        with open(events) as f:
            lines = f.read().split()
    except FileNotFoundError:
        return {}, {}
    made, closed = {}, {}
    for what, ident in zip(lines[::2], lines[1::2]):
        (made if what == 'new' else closed)[ident] = \
            (made if what == 'new' else closed).get(ident, 0) + 1
    return made, closed


def fds(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def sockets(pid):
    """The inodes of the process's sockets."""
    out = set()
    for fd in os.listdir('/proc/%d/fd' % pid):
        try:
            link = os.readlink('/proc/%d/fd/%s' % (pid, fd))
        except OSError:
            continue
        if link.startswith('socket:'):
            out.add(link)
    return out


def backlog(port):
    """Connections waiting in the listener's accept queue on `port`."""
    with open('/proc/net/tcp') as f:
        for line in f.readlines()[1:]:
            field = line.split()
            if (field[3] == '0A' and
                    int(field[1].split(':')[1], 16) == port):
                return int(field[4].split(':')[1], 16)
    return 0


def settled(events):
    made, closed = counts(events)
    return sum(made.values()) == sum(closed.values())


@pytest.mark.parametrize('how', ['fin', 'half', 'reset'])
def test_every_offset_closes_once(server, how):
    p, port, events = server
    # One whole conversation first: the server makes some descriptors when
    # it serves its first connection (the pool's), not at start.
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(CONV)
    s.settimeout(5)
    while s.recv(4096):
        pass
    s.close()
    assert wait_until(lambda: settled(events))
    base = fds(p.pid)
    base_socks = sockets(p.pid)

    def served():
        # Each cut connection accepted, let go and its object closed.  The
        # client cannot see that for a FIN or a reset, and without this
        # wait it would run ahead of a slow server and count too early.
        return (backlog(port) == 0 and sockets(p.pid) <= base_socks and
                settled(events))
    bad = []
    for n in range(len(CONV)):
        # A few at once, so some ends arrive while the server is busy.
        socks = [socket.create_connection(('127.0.0.1', port))
                 for _ in range(3)]
        for s in socks:
            if n:
                s.sendall(CONV[:n])
            if how == 'reset':
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack('ii', 1, 0))
                s.close()
            elif how == 'half':
                s.shutdown(socket.SHUT_WR)
            else:
                s.close()
        if how == 'half':
            for s in socks:
                s.settimeout(2)
                try:
                    while s.recv(4096):
                        pass
                except OSError as e:
                    if not isinstance(e, ConnectionResetError):
                        bad.append('%d: not closed by the milter (%s)' % (n, e))
                s.close()
        if not wait_until(served, 5):
            bad.append('%d: %r' % (n, counts(events)))
    assert not bad
    # The last connections' objects may still be closing.
    assert wait_until(lambda: set(counts(events)[1]) == set(counts(events)[0]))
    made, closed = counts(events)
    # Bytes sent before a FIN reach the milter, so every connection cut
    # past OPTNEG made one object; a reset may lose what was unread.
    whole = len(CONV) - len(OPTNEG)
    if how == 'reset':
        assert len(made) >= len(CONV) // 2, 'objects made: %d' % len(made)
    else:
        assert len(made) == 1 + 3 * whole, 'objects made: %d' % len(made)
    assert all(n == 1 for n in made.values())
    assert all(n == 1 for n in closed.values()), \
        'close() ran once for each object'
    assert wait_until(lambda: fds(p.pid) <= base + 1), (fds(p.pid), base)


def test_stop_with_a_gone_peer_is_quick(server):
    p, port, events = server
    s = socket.create_connection(('127.0.0.1', port))
    upto = CONV.index(pkt(b'T'))
    s.sendall(CONV[:upto] + pkt(b'D', b'R{rcpt_addr}\0b@x\0'))
    time.sleep(0.1)
    s.close()
    time.sleep(0.1)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    took = time.time() - t0
    assert took < 2.0, 'stop took %.2f s' % took
    made, closed = counts(events)
    assert made and set(closed) == set(made)
