#!/usr/bin/env python3
"""The hostile-peer acceptance measurement (not CI): against each example
milter, 5,000 connections of each kind from 4 client processes,

  partial-fin    half a packet, then close (FIN)
  partial-shut   half a packet, shutdown(SHUT_WR), close
  partial-reset  half a packet, then a reset (SO_LINGER 0)
  macro-fin      negotiated, one macro packet, then close (FIN)

then a table: descriptors and RSS before and 2 s after the last
connection, live connections left, the time to exit on SIGTERM with a peer
gone inside a message, and the time for 2,000 simultaneous handshakes.

  build/venv/bin/python bench/hostile/run.py [--conns 5000] [--procs 4]
      [--servers c,perl-default,perl-loop,perl-postfork,python]
      [--perl-script PATH]   another Perl milter in place of
                             examples/perl/header-milter.pl (to try a change)
"""
import argparse
import multiprocessing as mp
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'tests', 'hostile'))
import hostile as h  # noqa: E402

KINDS = ('partial-fin', 'partial-shut', 'partial-reset', 'macro-fin')


def one(addr, family, kind, payloads):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(addr)
        if kind == 'macro-fin':
            s.sendall(h.OPTNEG)
            buf = bytearray()
            r = h.read_packet(s, buf)
            if r is None or r[0] != b'O':
                return False
            s.sendall(payloads['macro'])
            s.close()
            return True
        s.sendall(payloads['partial'])
        if kind == 'partial-shut':
            s.shutdown(socket.SHUT_WR)
            s.close()
        elif kind == 'partial-reset':
            h.end(s, 'reset')
        else:
            h.end(s, 'fin')
        return True
    except OSError:
        s.close()
        return False


def client(args):
    addr, family, kind, n = args
    payloads = {'partial': h.OPTNEG[:7],
                'macro': h.macros(b'C', [(b'j', b'mx.example.net')])}
    ok = 0
    for _ in range(n):
        ok += one(addr, family, kind, payloads)
    return ok


def gone_peer_stop(kind, logdir):
    """Seconds from SIGTERM to exit with a peer that sent a macro packet
    inside a message and then closed."""
    srv = h.Server(kind, 'tcp', logdir).start()
    try:
        _, proto = h.full_stream(srv)
        pre = b''.join(p for _, p in h.wanted(h.session_packets([], 0, quit=False), proto))
        opening = b''
        for c, p in h.wanted(h.message_packets(list(kind.rcpts)), proto):
            opening += p
            if c != b'D':
                break
        s = h.dial(srv)
        s.sendall(h.OPTNEG + pre + opening)
        time.sleep(0.1)
        s.sendall(h.macros(b'R', [(b'{rcpt_addr}', b'user@example.com')]))
        h.end(s, 'fin')
        time.sleep(0.1)
        return srv.stop(timeout=kind.drain_s + 10)
    finally:
        srv.kill()


def measure(kind, conns, procs, logdir):
    srv = h.Server(kind, 'tcp', logdir).start()
    row = {'server': kind.name}
    try:
        row['fds0'], row['rss0'] = srv.baseline_fds, srv.rss_kb()
        t0 = time.monotonic()
        failed = 0
        with mp.Pool(procs) as pool:
            for k in KINDS:
                share = [conns // procs + (i < conns % procs) for i in range(procs)]
                ok = sum(pool.map(client, [(srv.addr(), srv.family(), k, n) for n in share]))
                failed += conns - ok
        row['secs'] = time.monotonic() - t0
        row['failed'] = failed
        time.sleep(2.0)
        row['fds1'], row['rss1'], row['live1'] = srv.fds(), srv.rss_kb(), srv.conns()
        row['alive'] = srv.alive()
        took, _, bad, _ = h.burst(srv, 2000, deadline=10)
        row['burst'] = took
        row['burst_failed'] = bad
        srv.recovered(5.0)
    finally:
        srv.kill()
    row['stop'] = gone_peer_stop(kind, logdir)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--conns', type=int, default=5000, help='connections of each kind')
    ap.add_argument('--procs', type=int, default=4, help='client processes')
    ap.add_argument('--servers', default='c,perl-default,perl-loop,perl-postfork,python')
    ap.add_argument('--perl-script')
    a = ap.parse_args()
    h.raise_nofile()
    import tempfile
    logdir = tempfile.mkdtemp(prefix='pmc-bench-hostile-')
    kinds = h.kinds()
    if a.perl_script:
        for k in kinds.values():
            if k.name.startswith('perl'):
                k.argv = k.argv[:-1] + [os.path.abspath(a.perl_script)]
    rows = []
    for name in a.servers.split(','):
        print('%s: %d connections x %d kinds from %d processes...'
              % (name, a.conns, len(KINDS), a.procs), file=sys.stderr, flush=True)
        rows.append(measure(kinds[name], a.conns, a.procs, logdir))
    fmt = '%-14s %9s %9s %10s %10s %6s %7s %7s %9s %10s'
    print(fmt % ('server', 'fd before', 'fd after', 'RSS0 KiB', 'RSS1 KiB', 'live',
                 'failed', 'secs', 'SIGTERM s', '2000 hs s'))
    for r in rows:
        print(fmt % (r['server'], r['fds0'], r['fds1'], r['rss0'], r['rss1'], r['live1'],
                     r['failed'], '%.1f' % r['secs'],
                     '%.2f' % r['stop'] if r['stop'] is not None else 'killed',
                     '%.3f' % r['burst'] if r['burst'] is not None else '>10'))
    print('(%d connections of each kind: %s; "after" is 2 s after the last; logs in %s)'
          % (a.conns, ', '.join(KINDS), logdir))


if __name__ == '__main__':
    main()
