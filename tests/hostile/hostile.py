"""The hostile-peer toolkit: raw milter packets, the example milters as child
processes, and what the kernel says about them (descriptors, connections,
memory).  Shared by tests/hostile (pytest) and bench/hostile (tables).

Nothing here uses the bindings: the client speaks bytes, so a server bug
cannot be hidden by a matching bug in a client library."""
import os
import random
import select
import signal
import socket
import struct
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BUILD = os.environ.get('HOSTILE_BUILD', os.path.join(ROOT, 'build'))
VENV_PY = os.environ.get('HOSTILE_PY', os.path.join(BUILD, 'venv', 'bin', 'python'))


# --- packets ----------------------------------------------------------------

def pkt(cmd, payload=b''):
    return struct.pack('>I', len(payload) + 1) + cmd + payload


def z(*parts):
    """NUL-terminated strings, as every string field of the protocol."""
    return b''.join(p + b'\0' for p in parts)


def macros(stage, pairs):
    return pkt(b'D', stage + z(*[x for kv in pairs for x in kv]))


ACTIONS_ALL = 0x1ff
PROTO_ALL = 0x1fffff
OPTNEG = pkt(b'O', struct.pack('>III', 6, ACTIONS_ALL, PROTO_ALL))

# The protocol bits by which the milter says "do not send" (NO) and "I will
# not answer" (NR), per command byte.
NO_BIT = {b'C': 0x1, b'H': 0x2, b'M': 0x4, b'R': 0x8, b'B': 0x10,
          b'L': 0x20, b'N': 0x40, b'U': 0x100, b'T': 0x200}
NR_BIT = {b'L': 0x80, b'C': 0x1000, b'H': 0x2000, b'M': 0x4000,
          b'R': 0x8000, b'T': 0x10000, b'U': 0x20000, b'N': 0x40000,
          b'B': 0x80000}
# Replies that end a command's answer; everything else is a modification
# (EOM) or progress.
FINAL = set(b'acdrtys')

SENDER = b'<sender@example.org>'


def message_packets(rcpts, sender=SENDER, body=b'Hello there.\r\n'):
    """(command, packet) for one message, MAIL to EOM, Postfix style (a
    macro packet before each event)."""
    out = [(b'D', macros(b'M', [(b'i', b'4Q1x2y3z'), (b'{mail_addr}', sender.strip(b'<>'))])),
           (b'M', pkt(b'M', z(sender, b'SIZE=100')))]
    for r in rcpts:
        out.append((b'D', macros(b'R', [(b'{rcpt_addr}', r.strip(b'<>'))])))
        out.append((b'R', pkt(b'R', z(r))))
    out += [(b'T', pkt(b'T')),
            (b'L', pkt(b'L', z(b'From', b' ' + sender.strip(b'<>')))),
            (b'L', pkt(b'L', z(b'Subject', b' hostile peers'))),
            (b'N', pkt(b'N')),
            (b'B', pkt(b'B', body)),
            (b'E', pkt(b'E'))]
    return out


def session_packets(rcpts, messages=1, sender=SENDER, quit=True):
    """(command, packet) after OPTNEG: connect, helo, messages, quit."""
    out = [(b'D', macros(b'C', [(b'j', b'mx.example.net'), (b'_', b'client [192.0.2.7]')])),
           (b'C', pkt(b'C', z(b'client.example.org') + b'4' + struct.pack('>H', 40123) + z(b'192.0.2.7'))),
           (b'D', macros(b'H', [(b'{tls_version}', b'TLSv1.3')])),
           (b'H', pkt(b'H', z(b'client.example.org')))]
    for _ in range(messages):
        out += message_packets(rcpts, sender)
    if quit:
        out.append((b'Q', pkt(b'Q')))
    return out


def wanted(packets, proto):
    """Drop what the milter asked not to be sent, as an MTA does."""
    return [(c, p) for c, p in packets if not proto & NO_BIT.get(c, 0)]


def owes_reply(cmd, proto):
    if cmd in (b'D', b'Q', b'A'):
        return False
    return not proto & NR_BIT.get(cmd, 0)


def read_packet(sock, buf):
    """One reply packet from sock (blocking, with the socket's timeout);
    buf is a bytearray of bytes already read.  None at end of stream."""
    while True:
        if len(buf) >= 4:
            n = struct.unpack('>I', bytes(buf[:4]))[0]
            if n == 0 or n > (1 << 24):
                raise ValueError('bad reply length %d' % n)
            if len(buf) >= 4 + n:
                p = bytes(buf[4:4 + n])
                del buf[:4 + n]
                return p[:1], p[1:]
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk


def negotiate(sock, buf):
    sock.sendall(OPTNEG)
    r = read_packet(sock, buf)
    if r is None or r[0] != b'O' or len(r[1]) < 12:
        raise AssertionError('bad OPTNEG reply %r' % (r,))
    return struct.unpack('>III', r[1][:12])


# --- the example milters ----------------------------------------------------

class Kind:
    """One example milter: how to start it and what it answers.
    rcpts: recipient -> expected final reply ('c' or a 'y' text prefix);
    header: the header name its EOM adds; drain_s: its drain deadline."""

    def __init__(self, name, argv, env=None, rcpts=None, header=None,
                 drain_s=30, forks=False):
        self.name, self.argv, self.env = name, argv, env or {}
        self.rcpts, self.header, self.drain_s = rcpts, header, drain_s
        self.forks = forks


def kinds():
    perl = ['perl', '-I' + os.path.join(ROOT, 'perl/blib/lib'),
            '-I' + os.path.join(ROOT, 'perl/blib/arch'),
            os.path.join(ROOT, 'examples/perl/header-milter.pl')]
    perl_rcpts = {b'<user@example.com>': 'c', b'<nobody@example.com>': 'c',
                  b'<x@elsewhere.test>': 'c'}
    k = [Kind('c', [os.path.join(BUILD, 'examples/hello_milter')],
              rcpts={b'<user@example.com>': 'c',
                     b'<nobody@example.com>': '550 5.1.1',
                     b'<x@elsewhere.test>': 'c'},
              header=b'X-Hello', drain_s=10),
         # No PMILTER_DISPATCHER: main's default (postfork today).
         Kind('perl-default', perl, rcpts=perl_rcpts, header=b'X-Header-Milter',
              forks=True),
         Kind('perl-loop', perl, env={'PMILTER_DISPATCHER': 'loop'},
              rcpts=perl_rcpts, header=b'X-Header-Milter'),
         Kind('perl-postfork', perl, env={'PMILTER_DISPATCHER': 'postfork'},
              rcpts=perl_rcpts, header=b'X-Header-Milter', forks=True),
         Kind('perl-prefork', perl, env={'PMILTER_DISPATCHER': 'prefork'},
              rcpts=perl_rcpts, header=b'X-Header-Milter', forks=True),
         Kind('python', [VENV_PY, os.path.join(ROOT, 'examples/python/recipient_check.py')],
              rcpts={b'<user@example.com>': 'c',
                     b'<nobody@example.com>': 'c',
                     b'<x@elsewhere.test>': '550 5.7.1'},
              header=b'X-Local-Recipients')]
    return {x.name: x for x in k}


def free_port():
    """A port outside the ephemeral range, so no client socket of anyone's
    can hold it and the per-port connection count is the server's alone."""
    lo, hi = 20000, 32000
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            eph = int(f.read().split()[0])
        hi = min(hi, eph - 1)
    except OSError:
        pass
    for _ in range(200):
        port = random.randint(lo, hi)
        s = socket.socket()
        try:
            s.bind(('127.0.0.1', port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError('no free port')


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """A running example milter on TCP (127.0.0.1) or a unix socket."""

    def __init__(self, kind, transport='tcp', logdir=None):
        self.kind, self.transport = kind, transport
        self.logdir = logdir or tempfile.mkdtemp(prefix='pmc-hostile-')
        self.proc = None
        self.port = self.path = None
        self.baseline_fds = None

    # Where clients go.
    def addr(self):
        return ('127.0.0.1', self.port) if self.port else self.path

    def family(self):
        return socket.AF_INET if self.port else socket.AF_UNIX

    def start(self, timeout=15):
        for attempt in range(3):
            if self.transport == 'tcp':
                self.port = free_port()
                spec = 'inet:%d@127.0.0.1' % self.port
            else:
                self.path = os.path.join(self.logdir, '%s.sock' % self.kind.name)
                spec = 'unix:' + self.path
            env = dict(os.environ)
            env.update(self.kind.env)
            if 'PMILTER_DISPATCHER' not in self.kind.env:
                env.pop('PMILTER_DISPATCHER', None)
            self.log = os.path.join(self.logdir, '%s-%s.log' % (self.kind.name, self.transport))
            with open(self.log, 'ab') as lf:
                # Its own session: the whole tree can be killed if a test
                # is interrupted.
                self.proc = subprocess.Popen(self.kind.argv + [spec], cwd=ROOT, env=env,
                                             stdin=subprocess.DEVNULL, stdout=lf,
                                             stderr=subprocess.STDOUT,
                                             start_new_session=True)
            if self._wait_listening(timeout):
                self.settle()
                return self
            self.kill()
        raise RuntimeError('%s did not start: %s' % (self.kind.name, self.log_tail()))

    def _wait_listening(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            if self.transport == 'tcp' and listening_tcp(self.port):
                return True
            if self.transport == 'unix' and self.path and listening_unix(self.path):
                return True
            time.sleep(0.02)
        return False

    def settle(self):
        """One conversation (so lazily made resources exist), then the
        baseline: descriptors once they stop changing."""
        conversation(self)
        end = time.monotonic() + 5
        last = None
        while time.monotonic() < end:
            n = self.fds()
            if n == last and self.conns() == 0:
                break
            last = n
            time.sleep(0.2)
        self.baseline_fds = self.fds()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return process_tree(self.proc.pid)

    def fds(self):
        total = 0
        for pid in self.pids():
            try:
                total += len(os.listdir('/proc/%d/fd' % pid))
            except OSError:
                pass
        return total

    def conns(self):
        if self.transport != 'tcp':
            return 0
        return live_tcp(self.port)

    def rss_kb(self):
        return rss_kb(self.proc.pid)

    def max_rss_kb(self):
        """The largest RSS in the tree: under postfork a connection's memory
        is its child's, which starts as a copy of the master."""
        return max([rss_kb(p) or 0 for p in self.pids()] or [0])

    def recovered(self, within=2.0, slack=2):
        """Wait until descriptors and connections are back at baseline;
        (ok, fds, conns, seconds)."""
        t0 = time.monotonic()
        end = t0 + within
        while True:
            f, c = self.fds(), self.conns()
            if abs(f - self.baseline_fds) <= slack and c == 0:
                return True, f, c, time.monotonic() - t0
            if time.monotonic() >= end:
                return False, f, c, time.monotonic() - t0
            time.sleep(0.02)

    def stop(self, timeout=40):
        """SIGTERM; seconds until it exited (None if it had to be killed)."""
        if not self.alive():
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            return time.monotonic() - t0
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, n=30):
        try:
            with open(self.log, 'rb') as f:
                return b'\n'.join(f.read().splitlines()[-n:]).decode('utf-8', 'replace')
        except OSError:
            return ''


# --- what the kernel knows --------------------------------------------------

def process_tree(root):
    children = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                st = f.read()
        except OSError:
            continue
        # The name may hold spaces and parentheses: fields follow the last ')'.
        ppid = int(st[st.rindex(')') + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def rss_kb(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _tcp_rows():
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    p = line.split()
                    yield int(p[1].rsplit(':', 1)[1], 16), p[3]
        except OSError:
            continue


def listening_tcp(port):
    return any(lp == port and st == '0A' for lp, st in _tcp_rows())


# ESTABLISHED and CLOSE_WAIT: a connection the server still holds (CLOSE_WAIT
# is the signature of a missed end of stream: the peer is gone, the server
# has not closed).
LIVE = {'01': 'ESTABLISHED', '08': 'CLOSE_WAIT'}


def live_tcp(port, detail=False):
    rows = [st for lp, st in _tcp_rows() if lp == port and st in LIVE]
    if detail:
        out = {}
        for st in rows:
            out[LIVE[st]] = out.get(LIVE[st], 0) + 1
        return out
    return len(rows)


def listening_unix(path):
    try:
        with open('/proc/net/unix') as f:
            return any(line.rstrip('\n').endswith(' ' + path) and ' 00010000 ' in line
                       for line in f)
    except OSError:
        return False


# --- clients ----------------------------------------------------------------

def dial(server, timeout=5.0, rcvbuf=None):
    if rcvbuf:
        s = socket.socket(server.family(), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(server.addr())
    else:
        s = connect_retry(server, timeout)
    if server.port:
        # An MTA writes a macro packet and its command back to back: without
        # this, Nagle holds the second until the first is acknowledged.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def conversation(server, messages=1, timeout=5.0):
    """A normal conversation in lock step, checked against what the example
    answers; returns its replies.  Raises AssertionError on a wrong answer,
    a missing one, or a server that does not close after QUIT."""
    k = server.kind
    rcpts = list(k.rcpts)
    s = dial(server, timeout)
    buf = bytearray()
    got = []
    try:
        _, _, proto = negotiate(s, buf)
        for cmd, p in wanted(session_packets(rcpts, messages), proto):
            s.sendall(p)
            if cmd == b'E':
                mods = []
                while True:
                    r = read_packet(s, buf)
                    assert r is not None, 'closed before the EOM reply'
                    if r[0][0] in FINAL:
                        break
                    mods.append(r)
                assert r[0] == b'c', 'EOM answered %r' % (r,)
                names = [m[1].split(b'\0')[0] for m in mods if m[0] == b'h']
                assert k.header in names, 'EOM added %r, not %r' % (names, k.header)
                got.append((cmd, r, mods))
            elif owes_reply(cmd, proto):
                r = read_packet(s, buf)
                assert r is not None, 'closed before answering %r' % cmd
                assert r[0][0] in FINAL, 'answer %r to %r' % (r, cmd)
                if cmd == b'R':
                    rc = p[5:].split(b'\0')[0]
                    want = k.rcpts[rc]
                    if want == 'c':
                        assert r[0] == b'c', 'RCPT %r answered %r' % (rc, r)
                    else:
                        assert r[0] == b'y' and r[1].startswith(want.encode()), \
                            'RCPT %r answered %r, want %s' % (rc, r, want)
                else:
                    assert r[0] == b'c', '%r answered %r' % (cmd, r)
                got.append((cmd, r, []))
        # After QUIT the milter closes.
        s.settimeout(2.0)
        assert read_packet(s, buf) is None, 'data after QUIT'
    finally:
        s.close()
    return got


def full_stream(server, proto=None, messages=1):
    """The client's bytes of one conversation (OPTNEG first), as cut by the
    offset cases."""
    if proto is None:
        s = dial(server)
        try:
            _, _, proto = negotiate(s, bytearray())
        finally:
            s.close()
    rc = list(server.kind.rcpts)
    return OPTNEG + b''.join(p for _, p in wanted(session_packets(rc, messages), proto)), proto


def drain_nowait(s):
    """Read what is already queued, so close() sends a FIN, not a reset
    (Linux resets a connection closed with unread data)."""
    s.setblocking(False)
    try:
        while s.recv(65536):
            pass
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:
        pass


def end(s, how):
    if how == 'reset':
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.close()
    elif how == 'fin':
        drain_nowait(s)
        s.close()
    else:
        raise ValueError(how)


def wait_eof(s, seconds):
    """After our half-close: read until the server closes; seconds taken, or
    None if it did not within the limit."""
    t0 = time.monotonic()
    endt = t0 + seconds
    s.setblocking(False)
    while True:
        left = endt - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        try:
            d = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except ConnectionResetError:
            return time.monotonic() - t0
        if not d:
            return time.monotonic() - t0


def connect_retry(server, timeout=5.0):
    """A connected socket; on a unix socket whose backlog is full connect
    fails with EAGAIN at once, where a TCP client would wait for the
    handshake, so retry for as long."""
    end = time.monotonic() + timeout
    while True:
        s = socket.socket(server.family(), socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(server.addr())
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() > end:
                raise
            time.sleep(0.005)
        except BaseException:
            s.close()
            raise


def cut(server, data, off, how, eof_within=2.0):
    """Send data[:off] in one write and end the connection by how ('fin',
    'reset', 'half').  For 'half' returns the server's close time or None."""
    s = connect_retry(server)
    try:
        if off:
            s.sendall(data[:off])
        if how == 'half':
            s.shutdown(socket.SHUT_WR)
            return wait_eof(s, eof_within)
        end(s, how)
        s = None
        return 0.0
    finally:
        if s is not None:
            s.close()


def syn_retransmitted(s):
    """Whether a TCP client socket had to send anything twice (for one
    just connected, its SYN): tcpi_total_retrans, at offset 100 of struct
    tcp_info.  The kernel's count, so a slow host does not make it up."""
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return len(info) >= 104 and struct.unpack('I', info[100:104])[0] > 0


def burst(server, n, hold=0.0, deadline=10.0, until=None, held=None):
    """n non-blocking connects at once; seconds until every handshake
    completed (None if some did not by the deadline), then all are reset.
    With until, the connections are held (at most hold seconds) until
    until() is true, e.g. until the server has accepted every one; then
    held(filled) runs, filled saying whether until() came true, before the
    resets.  Returns (seconds, completed, failed, retransmitted), the last
    the TCP connects whose SYN was sent again (a full listen backlog)."""
    import selectors
    sel = selectors.DefaultSelector()
    socks = []
    t0 = time.monotonic()
    pending = 0
    failed = 0
    try:
        for _ in range(n):
            s = socket.socket(server.family(), socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            socks.append(s)
            e = s.connect_ex(server.addr())
            if e == 0:
                continue
            if e in (115, 11):  # EINPROGRESS, EAGAIN (unix: backlog full)
                sel.register(s, selectors.EVENT_WRITE)
                pending += 1
            else:
                failed += 1
        endt = t0 + deadline
        while pending and time.monotonic() < endt:
            for key, _ in sel.select(endt - time.monotonic()):
                s = key.fileobj
                sel.unregister(s)
                pending -= 1
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    failed += 1
        took = time.monotonic() - t0 if not pending else None
        retrans = sum(1 for s in socks if s.family != socket.AF_UNIX and
                      syn_retransmitted(s))
        hold_end = time.monotonic() + hold
        filled = until is None
        while hold and time.monotonic() < hold_end:
            if until is not None and until():
                filled = True
                break
            time.sleep(0.01)
        if held is not None:
            held(filled)
        return took, n - pending - failed, failed + pending, retrans
    finally:
        sel.close()
        for s in socks:
            s.close()
