"""Hostile peers against the example milters (C, Perl under each dispatcher,
Python), over real sockets.  After every case the server must hold what it
held before (descriptors over its whole process tree, connections on its
port) within 2 s, be alive, and still answer a normal conversation."""
import concurrent.futures as cf
import selectors
import signal
import socket
import struct
import threading
import time

import pytest

import hostile as h
from conftest import knob, record

RECOVER_S = 2.0
FD_SLACK = 2


def assert_recovered(srv, case, within=RECOVER_S):
    ok, fds, conns, took = srv.recovered(within, FD_SLACK)
    detail = h.live_tcp(srv.port, detail=True) if srv.port else {}
    assert ok, ('%s: %s: after %.1f s the server holds %d descriptors (baseline %d) '
                'and %d connections %s' % (srv.kind.name, case, took, fds,
                                           srv.baseline_fds, conns, detail))
    assert srv.alive(), '%s died during %s' % (srv.kind.name, case)
    h.conversation(srv)


def batch_size(srv):
    # The Perl binding listens with a backlog of 5 today: a larger batch
    # would make the sweep measure SYN retransmits (the burst case does).
    return 4 if srv.kind.name.startswith('perl') else 32


def sweep(srv, how):
    """Cut the conversation at every byte offset by how; returns (offsets
    whose connection was not released, half-closes the server did not
    answer by closing within 2 s, slowest close)."""
    data, _ = h.full_stream(srv)
    offsets = list(range(len(data) + 1))
    b = batch_size(srv)
    leaked, unanswered, slowest = [], [], 0.0
    # Descriptors, not /proc/net/tcp, per batch: the socket tables list
    # every TIME_WAIT on the host and take tens of ms to read.
    held = srv.baseline_fds + FD_SLACK
    with cf.ThreadPoolExecutor(b) as ex:
        for i in range(0, len(offsets), b):
            part = offsets[i:i + b]
            for off, r in zip(part, ex.map(lambda o: h.cut(srv, data, o, how), part)):
                if r is None:
                    unanswered.append(off)
                else:
                    slowest = max(slowest, r)
            # Per batch, so a leak names its offsets.
            # One sample decides: a second one could see a child forked
            # for a connection the master had not accepted yet.
            end = time.monotonic() + RECOVER_S
            while True:
                n = srv.fds()
                if n <= held:
                    break
                if time.monotonic() >= end:
                    leaked.append((part[0], part[-1], n - held))
                    held = n
                    break
                time.sleep(0.002)
    return data, leaked, unanswered, slowest


# --- 1. the end of the peer at every byte -----------------------------------

@pytest.mark.parametrize('how', ['reset', 'fin', 'half'])
def test_cut_every_offset(srv, how):
    t0 = time.monotonic()
    data, leaked, unanswered, slowest = sweep(srv, how)
    record('%-14s cut/%-5s tcp  %4d offsets in %5.1f s, slowest close %.3f s'
           % (srv.kind.name, how, len(data) + 1, time.monotonic() - t0, slowest))
    assert not unanswered, ('half-closed at these offsets, the server did not close '
                            'within 2 s: %s' % unanswered)
    assert not leaked, 'descriptors kept (first, last offset, count): %s' % leaked
    assert_recovered(srv, 'cut by %s at every offset' % how)


@pytest.mark.parametrize('how', ['fin', 'half'])
def test_cut_every_offset_unix(usrv, how):
    data, _, unanswered, _ = sweep(usrv, how)
    assert not unanswered, ('half-closed at these offsets, the server did not close '
                            'within 2 s: %s' % unanswered)
    assert_recovered(usrv, 'unix socket cut by %s at every offset' % how)


# --- 2. peers that stop reading, floods, stalls -----------------------------

def test_peer_stops_reading(srv):
    """The peer pipelines messages and never reads the replies: the server
    must stop at its own buffers' limit (not grow without bound), keep
    serving others, and release the connection when the peer goes."""
    s = h.dial(srv, rcvbuf=4096)
    _, _, proto = h.negotiate(s, bytearray())
    # Replies larger than the input, so the server's output (not our input)
    # is what fills the buffers: the recipients each example refuses (a
    # reply longer than the command) and a long sender, which the Perl
    # example's header quotes.
    sender = b'<' + b'a' * 2000 + b'@example.org>'
    rcpts = [r for r, v in srv.kind.rcpts.items() if v != 'c'] or list(srv.kind.rcpts)
    chunk = b''.join(p for _, p in h.wanted(
        h.message_packets(rcpts * 100, sender), proto))
    pre = b''.join(p for _, p in h.wanted(h.session_packets([], 0, quit=False), proto))
    rss0 = srv.rss_kb()
    s.setblocking(False)
    out = pre + chunk * 64
    sent, budget, last_progress = 0, 64 << 20, time.monotonic()
    while sent < budget and time.monotonic() - last_progress < 1.0:
        try:
            n = s.send(out)
            sent += n
            last_progress = time.monotonic()
            out = out[n:] if n < len(out) else chunk * 64
        except BlockingIOError:
            time.sleep(0.02)
    blocked = sent < budget
    rss1 = srv.max_rss_kb()
    grown_mib = (rss1 - rss0) / 1024
    record('%-14s stop-reading: %.1f MiB accepted before the server pushed back, '
           'RSS %d -> %d KiB' % (srv.kind.name, sent / 2**20, rss0, rss1))
    try:
        t0 = time.monotonic()
        h.conversation(srv)
        assert time.monotonic() - t0 < 2.0, 'a stuck writer delayed another connection'
        s.shutdown(socket.SHUT_RD)
        s.shutdown(socket.SHUT_WR)
        h.conversation(srv)
    finally:
        s.close()
    assert blocked, 'the server read %d MiB without pushing back' % (budget >> 20)
    assert grown_mib < 16, 'the server buffered %.0f MiB of replies' % grown_mib
    assert_recovered(srv, 'a peer that stopped reading')


def expected_finals(srv, proto, messages=1):
    out = []
    for cmd, p in h.wanted(h.session_packets(list(srv.kind.rcpts), messages), proto):
        if cmd == b'R' and h.owes_reply(cmd, proto):
            out.append(srv.kind.rcpts[p[5:].split(b'\0')[0]])
        elif cmd == b'E' or h.owes_reply(cmd, proto):
            out.append('c')
    return out


def finals_of(replies):
    out = []
    for c, payload in replies:
        if c[0] in h.FINAL:
            out.append('c' if c == b'c' else payload[:9].decode() if c == b'y' else c.decode())
    return out


def parse_all(buf):
    out, i = [], 0
    while len(buf) - i >= 4:
        n = struct.unpack('>I', buf[i:i + 4])[0]
        if len(buf) - i < 4 + n:
            break
        out.append((buf[i + 4:i + 5], buf[i + 5:i + 4 + n]))
        i += 4 + n
    return out


def test_pipeline_flood(srv):
    """Many messages in one write, as fast as the socket takes them, while
    the replies are read: every one answered, in order."""
    n = knob('PIPELINE_MSGS', 2000, 20000)
    data, proto = h.full_stream(srv, messages=n)
    s = h.dial(srv, timeout=60)
    got = bytearray()
    w = threading.Thread(target=s.sendall, args=(data,))
    t0 = time.monotonic()
    w.start()
    try:
        while time.monotonic() - t0 < 60:
            d = s.recv(1 << 16)
            if not d:
                break
            got += d
    finally:
        w.join(60)
        s.close()
    took = time.monotonic() - t0
    record('%-14s pipeline: %d messages in one stream, %.3f s' % (srv.kind.name, n, took))
    replies = parse_all(bytes(got))
    want = expected_finals(srv, proto, n)
    # OPTNEG's reply comes first.
    assert replies and replies[0][0] == b'O'
    finals = finals_of(replies[1:])
    assert len(finals) == len(want), 'answered %d of %d' % (len(finals), len(want))
    assert finals == want
    hdrs = sum(1 for c, p in replies if c == b'h' and p.startswith(srv.kind.header + b'\0'))
    assert hdrs == n
    assert_recovered(srv, 'a pipelined flood')


def test_connection_flood(srv):
    """Many connections opened at once, each a whole conversation in one
    write: every one is answered in full and closed after its QUIT."""
    n = knob('FLOOD_CONNS', 1000, 2000)
    data, proto = h.full_stream(srv)
    want = expected_finals(srv, proto)
    sel = selectors.DefaultSelector()
    conns = {}
    t0 = time.monotonic()
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(srv.addr())
        conns[s] = bytearray()
        sel.register(s, selectors.EVENT_WRITE)
    done, bad, errors = 0, [], 0
    deadline = t0 + knob('FLOOD_SECONDS', 10, 60)
    while sel.get_map() and time.monotonic() < deadline:
        for key, ev in sel.select(1.0):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE:
                try:
                    s.sendall(data)  # small enough for an empty send buffer
                except OSError:
                    errors += 1
                    sel.unregister(s)
                    continue
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = None
            if d:
                conns[s] += d
                continue
            sel.unregister(s)
            if d is None:
                errors += 1
                continue
            done += 1
            r = parse_all(bytes(conns[s]))
            if not r or r[0][0] != b'O' or finals_of(r[1:]) != want:
                bad.append(r)
    unfinished = len(sel.get_map())
    took = time.monotonic() - t0
    sel.close()
    for s in conns:
        s.close()
    record('%-14s flood: %d connections at once, all answered and closed in %.2f s'
           ' (%d unfinished, %d errors)' % (srv.kind.name, n, took, unfinished, errors))
    assert not unfinished and not errors, '%d unfinished, %d reset' % (unfinished, errors)
    assert not bad, '%d of %d answered wrongly, first: %r' % (len(bad), n, bad[0])
    assert_recovered(srv, 'a connection flood')


def message_opening(srv, proto):
    """The bytes that put a session inside a message: up to the first
    message command the milter gets (MAIL, or RCPT where it asked for no
    MAIL), with the macro packets before it."""
    out = b''
    for c, p in h.wanted(h.message_packets(list(srv.kind.rcpts)), proto):
        out += p
        if c != b'D':
            return out
    raise AssertionError('the milter takes no message command')


def stall_peers(srv, proto):
    """Peers that stop talking: one that sends nothing, one with half an
    OPTNEG, one negotiated with half a MAIL packet, one silent inside a
    message."""
    peers = []
    s = h.dial(srv)
    peers.append(s)
    s = h.dial(srv)
    s.sendall(h.OPTNEG[:7])
    peers.append(s)
    pre = b''.join(p for _, p in h.wanted(h.session_packets([], 0, quit=False), proto))
    opening = message_opening(srv, proto)
    s = h.dial(srv)
    s.sendall(h.OPTNEG + pre + opening[:-3])
    peers.append(s)
    s = h.dial(srv)
    s.sendall(h.OPTNEG + pre + opening)
    peers.append(s)
    return peers


def test_stalls_do_not_block_others(srv):
    _, proto = h.full_stream(srv)
    peers = stall_peers(srv, proto)
    try:
        time.sleep(0.2)
        for _ in range(3):
            t0 = time.monotonic()
            h.conversation(srv)
            took = time.monotonic() - t0
            assert took < 2.0, 'a conversation took %.1f s beside stalled peers' % took
        record('%-14s stalls: a conversation beside 4 stalled peers took %.3f s'
               % (srv.kind.name, took))
    finally:
        for s in peers:
            s.close()
    assert_recovered(srv, 'stalled peers')


def test_stall_unix(usrv):
    _, proto = h.full_stream(usrv)
    peers = stall_peers(usrv, proto)
    try:
        t0 = time.monotonic()
        h.conversation(usrv)
        assert time.monotonic() - t0 < 2.0
    finally:
        for s in peers:
            s.close()
    assert_recovered(usrv, 'stalled peers on a unix socket')


# --- 4. shutdown time ---------------------------------------------------------

# Interpreter tear-down (Perl's global destruction, Python's finalization)
# after the server returned.
STOP_MARGIN = 0.5


def started(kind, tmp_path):
    return h.Server(kind, 'tcp', str(tmp_path)).start()


def check_stop(srv, case):
    took = srv.stop(timeout=srv.kind.drain_s + 10)
    rc = srv.proc.returncode
    record('%-14s SIGTERM with %s: exit in %s (status %s)' % (
        srv.kind.name, case, '%.2f s' % took if took is not None else 'never', rc))
    assert took is not None, 'did not exit after SIGTERM'
    assert took <= 2.0 + STOP_MARGIN, ('took %.2f s to exit (drain deadline %d s) with %s'
                                       % (took, srv.kind.drain_s, case))
    assert rc == 0, 'exit status %s' % rc


def test_sigterm_with_idle_peers(kind, tmp_path):
    """A stop serves every open connection until its peer ends it (an MTA
    sends the next message of its session over a connection that is idle
    between messages), up to the drain deadline: silent, partial and idle
    peers keep it running, and once they close it exits at once."""
    srv = started(kind, tmp_path)
    peers = []
    try:
        _, proto = h.full_stream(srv)
        peers = stall_peers(srv, proto)[:3]
        # One more, negotiated and between messages.
        s = h.dial(srv)
        buf = bytearray()
        h.negotiate(s, buf)
        peers.append(s)
        time.sleep(0.2)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert srv.proc.poll() is None, 'exited with its peers still there'
        t0 = time.monotonic()
        for s in peers:
            s.close()
        srv.proc.wait(srv.kind.drain_s + 10)
        took = time.monotonic() - t0
        rc = srv.proc.returncode
        record('%-14s SIGTERM with idle, silent and partial peers: served '
               'them, exit %.2f s after they closed (status %s)'
               % (srv.kind.name, took, rc))
        assert took <= 2.0 + STOP_MARGIN, 'took %.2f s to exit' % took
        assert rc == 0, 'exit status %s' % rc
    finally:
        srv.kill()
        for s in peers:
            s.close()


GONE_PEERS = 16


@pytest.mark.parametrize('how', ['fin', 'reset'])
def test_sigterm_after_gone_peer_in_message(kind, tmp_path, how):
    srv = started(kind, tmp_path)
    try:
        _, proto = h.full_stream(srv)
        pre = b''.join(p for _, p in h.wanted(h.session_packets([], 0, quit=False), proto))
        mail = message_opening(srv, proto)
        # Several such peers: where the end shares an epoll edge with the
        # macro is a matter of timing, and each peer is one more draw.
        peers = [h.dial(srv) for _ in range(GONE_PEERS)]
        for s in peers:
            s.sendall(h.OPTNEG + pre + mail)
        time.sleep(0.2)
        macro = h.macros(b'R', [(b'{rcpt_addr}', b'user@example.com')])
        for s in peers:
            # Inside a message, a macro packet (which gets no reply), then gone.
            s.sendall(macro)
            h.end(s, how)
        time.sleep(0.1)
        check_stop(srv, '%d peers gone (%s) after a macro inside a message' % (GONE_PEERS, how))
    finally:
        srv.kill()


# --- 5, 6. connect bursts and memory -------------------------------------------

BURST = 2000


def burst_window(srv):
    """How long a burst of BURST connects may take to be released.  A
    server that forks a process per connection (Perl's postfork default)
    starts and reaps one process per connect, about a millisecond each on
    two cores, however soon the peer went (the child runs the close
    callback, which every connection gets): 2 s plus 1.5 ms per connect.
    The time it took is recorded with the figures."""
    return RECOVER_S + (0.0015 * BURST if srv.kind.forks else 0.0)


def test_burst_handshake(srv):
    took, ok, failed, retrans = h.burst(srv, BURST, deadline=10)
    record('%-14s burst: %d connects, handshakes done in %s (%d failed, %d SYN '
           'retransmitted)' % (srv.kind.name, BURST, '%.3f s' % took
                               if took is not None else '>10 s', failed, retrans))
    try:
        assert took is not None and not failed, '%d of %d connects did not complete' % (failed, BURST)
        # Counted by the kernel, not timed: on a loaded host the client
        # alone takes over 1 s (the initial RTO) to open 2,000 sockets.
        assert not retrans, ('%d of %d simultaneous connects sent their SYN again '
                             '(listen backlog too small?)' % (retrans, BURST))
    finally:
        # Recovery is checked even when the timing failed.
        t0 = time.monotonic()
        assert_recovered(srv, 'a burst of %d connects' % BURST,
                         burst_window(srv))
        record('%-14s burst: released in %.2f s' % (
            srv.kind.name, time.monotonic() - t0))


def test_memory_after_bursts(srv):
    """RSS over repeated bursts: the last within a few MiB of the first,
    and flat over the second half (steady growth is a leak).

    A server that serves every connection in one process is measured at
    the peak, with all BURST connections accepted and held: after they are
    released the reading would depend on whether the loop has given freed
    memory back yet (malloc_trim, a second after it went idle), and before
    all were accepted on how many happened to be live at once (CI saw
    13.6 MiB then 27.6 MiB, and 18.5, 13.5, 27.5, 27.5 MiB, read after
    release).  A server that forks per connection is measured after the
    release: its connections' memory is its children's."""
    rounds = knob('MEM_BURSTS', 4, 10)
    limit_kb = knob('MEM_SLACK_KB', 8192, 8192)
    tail_kb = knob('MEM_TAIL_KB', 1024, 1024)
    rss = []
    full = srv.baseline_fds + BURST

    def at_peak(filled):
        assert filled, ('%s: %d held connects not all accepted in 10 s '
                        '(%d descriptors, %d wanted)' % (
                            srv.kind.name, BURST, srv.fds(), full))
        rss.append(srv.rss_kb())

    peak = {} if srv.kind.forks else dict(
        hold=10.0, until=lambda: srv.fds() >= full, held=at_peak)
    for i in range(rounds):
        took, ok, failed, _ = h.burst(srv, BURST, deadline=15, **peak)
        assert not failed, 'burst %d: %d connects failed' % (i, failed)
        assert_recovered(srv, 'burst %d' % i, burst_window(srv))
        if srv.kind.forks:
            rss.append(srv.rss_kb())
    record('%-14s memory: RSS %s %d bursts of %d (KiB): %s' % (
        srv.kind.name, 'after' if srv.kind.forks else 'at the peak of',
        rounds, BURST, ' '.join(map(str, rss))))
    assert rss[-1] - rss[0] <= limit_kb, ('RSS grew %d KiB from the first burst to the '
                                          'last: %s' % (rss[-1] - rss[0], rss))
    mid = rss[len(rss) // 2]
    assert rss[-1] - mid <= tail_kb, ('RSS still growing over the second half '
                                      '(%d KiB): %s' % (rss[-1] - mid, rss))
