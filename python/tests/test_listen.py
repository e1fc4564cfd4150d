"""Opening the listening socket: a failure says why (the spec, the step and
the system error), a live milter's unix socket is never taken over, and the
default backlog takes a burst of connections."""
import ctypes
import errno
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import milter
import Milter
import pytest
import serving

PREFIX = 'cannot opensocket: '


def open_error(spec, rmsock=True):
    milter.setconn(spec)
    with pytest.raises(milter.error) as ei:
        milter.opensocket(rmsock)
    return ei.value


def expect(e, spec, step, err, what=PREFIX):
    """e is milter.error('<what><spec>: <step>: <strerror>') with .errno."""
    assert str(e) == '%s%s: %s: %s' % (what, spec, step, os.strerror(err))
    assert e.reason == str(e)[len(what):]
    assert e.errno == err


def serve_briefly():
    """Run main() on the socket opensocket() left for it, and stop it."""
    done = threading.Event()

    def stopper():
        # stop() before main() runs does nothing: ask until it returned.
        while not done.wait(0.05):
            milter.stop()
    t = threading.Thread(target=stopper)
    t.start()
    try:
        assert milter.main() is None
    finally:
        done.set()
        t.join()


@pytest.mark.parametrize('spec, why', [
    ('tcp:25', 'unknown socket type'),
    ('inet:99999@127.0.0.1', 'port out of range'),
    ('inet:25@300.1.2.3', 'invalid IPv4 address'),
    ('inet6:25@[::g]', 'invalid IPv6 address'),
    ('unix:relative.sock', 'the socket path must be absolute'),
])
def test_bad_spec(spec, why):
    e = open_error(spec)
    assert str(e).startswith(PREFIX + spec + ': ') and why in str(e), str(e)
    assert e.errno is None      # no system call failed


def test_tcp_address_in_use():
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        spec = 'inet:%d@127.0.0.1' % busy.getsockname()[1]
        expect(open_error(spec), spec, 'bind', errno.EADDRINUSE)


def test_address_not_on_this_host():
    """An address no interface has (which one, this host decides: a test
    net may be configured here, as 192.0.2.2/24 is on some CI hosts)."""
    for addr in ('192.0.2.1', '198.51.100.1', '203.0.113.1'):
        with socket.socket() as s:
            try:
                s.bind((addr, 0))
            except OSError as e:
                if e.errno == errno.EADDRNOTAVAIL:
                    break
    else:
        pytest.fail('every test-net address is bindable here')
    spec = 'inet:2525@' + addr
    expect(open_error(spec), spec, 'bind', errno.EADDRNOTAVAIL)


def test_unix_path_in_missing_directory(tmp_path):
    spec = 'unix:%s' % (tmp_path / 'nodir' / 'm.sock')
    expect(open_error(spec), spec, 'bind', errno.ENOENT)


def test_unix_path_not_a_socket(tmp_path):
    f = tmp_path / 'plain'
    f.write_text('keep me')
    e = open_error(str(f))      # pymilter's bare path: unix
    expect(e, 'unix:%s' % f, 'exists and is not a socket', errno.EEXIST)
    assert f.read_text() == 'keep me'


def test_main_says_why(tmp_path):
    """main() without opensocket() opens the socket itself."""
    spec = 'unix:%s' % (tmp_path / 'nodir' / 'm.sock')
    milter.setconn(spec)
    with pytest.raises(milter.error) as ei:
        milter.main()
    expect(ei.value, spec, 'bind', errno.ENOENT, what='cannot run main: ')


def test_runmilter_says_why(tmp_path):
    sock = str(tmp_path / 'nodir' / 'm.sock')
    with pytest.raises(milter.error) as ei:
        Milter.runmilter('t', sock)
    expect(ei.value, 'unix:' + sock, 'bind', errno.ENOENT)


def test_runmilter_keeps_why_behind_its_guess(monkeypatch):
    """A main() failure after connections came in is pymilter's "out of
    thread resources"; the engine's reason follows it."""
    def failing_main():
        Milter.uniqueID()           # a connection was served
        raise milter.error('cannot run main: something real')
    monkeypatch.setattr(milter, 'opensocket', lambda rmsock: None)
    monkeypatch.setattr(milter, 'main', failing_main)
    with pytest.raises(milter.error) as ei:
        Milter.runmilter('t', 'inet:2525@127.0.0.1')
    assert str(ei.value) == ('out of thread resources: '
                             'cannot run main: something real')


def test_opensocket_twice_says_why(tmp_path):
    milter.setconn('unix:%s' % (tmp_path / 'a.sock'))
    milter.opensocket(True)
    try:
        with pytest.raises(milter.error) as ei:
            milter.opensocket(True)
        assert str(ei.value) == (PREFIX +
                                 'a socket is already open for main()')
        assert ei.value.errno is None
    finally:
        serve_briefly()


# Run in a child without the privileges that let root bind anywhere.
OPEN_UNPRIVILEGED = '''
import milter, sys
for spec in sys.argv[1:]:
    milter.setconn(spec)
    try:
        milter.opensocket(True)
        print('opened', spec)
    except milter.error as e:
        print('%s|%s' % (e, e.errno))
'''
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_NET_BIND_SERVICE = 1, 10


def without_root_powers():
    """A preexec_fn.  Root keeps its uid (so it can still run this
    interpreter, wherever it is installed) but loses, from the bounding set
    and so at exec, the two capabilities that override what we test: file
    permissions and binding ports below 1024."""
    libc = ctypes.CDLL(None, use_errno=True)

    def drop():
        if os.geteuid() != 0:
            return
        for cap in (CAP_DAC_OVERRIDE, CAP_NET_BIND_SERVICE):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP)')
    return drop


def unprivileged_port_start():
    try:
        with open('/proc/sys/net/ipv4/ip_unprivileged_port_start') as f:
            return int(f.read())
    except OSError:
        return 1024


@pytest.mark.parametrize('kind', ['unix', 'tcp'])
def test_permission_denied(kind, tmp_path):
    d = tmp_path / 'ro'
    d.mkdir(0o555)              # its owner may not create the socket file
    if kind == 'unix':
        spec = 'unix:%s/m.sock' % d
    else:
        if unprivileged_port_start() <= 1:
            pytest.skip('this host lets anyone bind port 1')
        spec = 'inet:1@127.0.0.1'
    r = subprocess.run([sys.executable, '-c', OPEN_UNPRIVILEGED, spec],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True,
                       preexec_fn=without_root_powers(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        '%s%s: bind: %s|%d' % (PREFIX, spec, os.strerror(errno.EACCES),
                               errno.EACCES)], r.stdout


def test_second_instance_refused_first_still_serves(tmp_path):
    path = str(tmp_path / 'm.sock')
    spec = 'unix:' + path
    first = serving.Server('srv_helper.py', 'term', path)
    try:
        for rmsock in (True, False):
            expect(open_error(spec, rmsock), spec,
                   'another milter is already listening on this socket',
                   errno.EADDRINUSE)
        with pytest.raises(milter.error) as ei:
            Milter.runmilter('second', path)        # rmsock=True
        expect(ei.value, spec,
               'another milter is already listening on this socket',
               errno.EADDRINUSE)
        milter.setconn(spec)
        with pytest.raises(milter.error) as ei:
            milter.main()
        expect(ei.value, spec,
               'another milter is already listening on this socket',
               errno.EADDRINUSE, what='cannot run main: ')
        c = first.client()
        c.mail([b'<a@x>'])
        c.rcpt([b'<b@x>'])
        assert c.eom()[2] == [('h', 0, b'X-Served', b'term')]
        c.quit()
        rc, out, err = first.stop()
        assert rc == 0 and 'main returned None' in out, (out, err)
    finally:
        first.kill()


def test_stale_socket_replaced(tmp_path):
    """A milter that died without cleaning up left its socket file: nobody
    answers there, so the next one takes the path."""
    path = str(tmp_path / 'm.sock')
    first = serving.Server('srv_helper.py', 'term', path)
    first.p.send_signal(signal.SIGKILL)
    first.finish()
    assert os.path.exists(path)
    milter.setconn(path)
    milter.opensocket(True)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)         # ours now: the listen queue takes it
    finally:
        serve_briefly()


def test_setbacklog_reaches_listen(tmp_path):
    """setbacklog(n) sizes the listen queue (pymilter's semantics; n <= 0
    is refused in test_module): with nobody accepting, a unix socket takes
    n + 1 connections (Linux) and refuses the next with EAGAIN.  In a child
    process: the setting has no reset and would stay for later tests."""
    code = '''
import errno, milter, socket, sys
milter.setbacklog(3)
milter.setconn(sys.argv[1])
milter.opensocket(True)
held = []
while len(held) < 100:
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except BlockingIOError:
        break
    held.append(s)
print(len(held))
'''
    r = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'b.sock')],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['4']


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.fail('RLIMIT_NOFILE hard limit %d < %d' % (hard, need))
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return soft, hard


def test_default_backlog_takes_1000_simultaneous_connects(tmp_path):
    """1,000 non-blocking TCP connects at once to a running Python milter
    all complete their handshake without a SYN sent twice.  When the listen
    queue is full Linux drops the SYN and the client sends it again after
    TCP's initial retransmission timeout, 1 s; each socket's
    tcpi_total_retrans counts that: counted, not timed, as a loaded host
    can take over 1 s just to open the sockets."""
    n = 1000
    saved = raise_nofile(2 * n + 256)   # the child inherits it too
    socks = []
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    srv = serving.Server('srv_helper.py', 'term',
                         'inet:%d@127.0.0.1' % port)
    try:
        poller = select.poll()
        pending = {}
        t0 = time.monotonic()
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.setblocking(False)
            rc = s.connect_ex(('127.0.0.1', port))
            assert rc in (0, errno.EINPROGRESS), os.strerror(rc)
            pending[s.fileno()] = s
            poller.register(s, select.POLLOUT)
        failed = []
        while pending:
            left = t0 + 10.0 - time.monotonic()
            if left <= 0:
                break
            for fd, ev in poller.poll(left * 1000):
                s = pending.pop(fd)
                poller.unregister(fd)
                e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if e:
                    failed.append(os.strerror(e))
        elapsed = time.monotonic() - t0
        if pending or failed:
            pytest.fail('%d connects still pending, %d failed (%s) after '
                        '%.3f s' % (len(pending), len(failed), failed[:3],
                                    elapsed))
        again = [s for s in socks if struct.unpack(
            'I', s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO,
                              104)[100:104])[0]]
        assert not again, ('%d of %d connects sent their SYN again (%.3f s): '
                           'the default backlog overflowed'
                           % (len(again), n, elapsed))
        # The burst did not wedge the milter: it serves a new connection.
        c = socket.create_connection(('127.0.0.1', port), timeout=10)
        conn = milter._TestConn(fd=c.fileno(), timeout_ms=10000)
        conn.negotiate()
        conn.connect('mx', '4', 25, '192.0.2.1')
        conn.mail([b'<a@x>'])
        conn.rcpt([b'<b@x>'])
        assert conn.eom()[2] == [('h', 0, b'X-Served', b'term')]
        conn.quit()
        c.close()
        for s in socks:
            s.close()
        rc, out, err = srv.stop()
        assert rc == 0 and 'main returned None' in out, (out, err)
    finally:
        for s in socks:
            s.close()
        srv.kill()
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)
