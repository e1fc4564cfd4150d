#!/usr/bin/env python3
"""Soak (not CI): a million messages into one example milter, with some
connections reset at a random byte, bounded in time.  Prints descriptors,
RSS and live connections at the start and at the end (2 s after the last
client), and whether the server still answers a normal conversation.

  build/venv/bin/python bench/hostile/soak.py [--server c] [--messages 1000000]
      [--seconds 900] [--procs 2] [--per-conn 50] [--reset 0.1]
"""
import argparse
import multiprocessing as mp
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'tests', 'hostile'))
import hostile as h  # noqa: E402


def worker(args):
    """Connections until the quota or the deadline; (messages answered,
    connections, resets, errors)."""
    addr, stream, eoms_per_conn, quota, deadline, p_reset, seed = args
    rnd = random.Random(seed)
    done = conns = resets = errors = 0
    while done < quota and time.time() < deadline:
        conns += 1
        s = socket.socket()
        s.settimeout(30)
        try:
            s.connect(addr)
            if rnd.random() < p_reset:
                # Cut anywhere, even inside the OPTNEG.
                s.sendall(stream[:rnd.randrange(len(stream))])
                h.end(s, 'reset')
                resets += 1
                continue
            s.sendall(stream)
            buf = bytearray()
            eoms = 0
            while True:
                r = h.read_packet(s, buf)
                if r is None:
                    break
                # Each example adds exactly one header per message.
                if r[0] == b'h':
                    eoms += 1
            if eoms != eoms_per_conn:
                errors += 1
            done += eoms
        except (OSError, ValueError):
            errors += 1
        finally:
            s.close()
    return done, conns, resets, errors


def snapshot(srv):
    return 'fds %d, RSS %d KiB, live connections %d' % (srv.fds(), srv.rss_kb(), srv.conns())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--server', default='c')
    ap.add_argument('--messages', type=int, default=1000000)
    ap.add_argument('--seconds', type=int, default=900, help='upper bound on the run')
    ap.add_argument('--procs', type=int, default=2)
    ap.add_argument('--per-conn', type=int, default=50, help='messages per connection')
    ap.add_argument('--reset', type=float, default=0.1, help='share of connections reset')
    a = ap.parse_args()
    h.raise_nofile()
    import tempfile
    srv = h.Server(h.kinds()[a.server], 'tcp', tempfile.mkdtemp(prefix='pmc-soak-')).start()
    try:
        data, _ = h.full_stream(srv, messages=a.per_conn)
        print('%s start: %s' % (a.server, snapshot(srv)), flush=True)
        t0 = time.time()
        deadline = t0 + a.seconds
        quota = [a.messages // a.procs + (i < a.messages % a.procs) for i in range(a.procs)]
        with mp.Pool(a.procs) as pool:
            res = pool.map(worker, [(srv.addr(), data, a.per_conn, q, deadline, a.reset, i)
                                    for i, q in enumerate(quota)])
        took = time.time() - t0
        done, conns, resets, errors = (sum(x) for x in zip(*res))
        time.sleep(2.0)
        print('%s end:   %s' % (a.server, snapshot(srv)))
        try:
            h.conversation(srv)
            still = 'answers a normal conversation'
        except (AssertionError, OSError) as e:
            still = 'FAILS a normal conversation: %s' % e
        print('%d messages answered in %.0f s (%.0f/s) over %d connections, %d reset, '
              '%d wrong or failed%s; baseline fds %d; the server %s'
              % (done, took, done / took, conns, resets, errors,
                 '' if done >= a.messages else ' (stopped by --seconds)',
                 srv.baseline_fds, still))
    finally:
        srv.kill()


if __name__ == '__main__':
    main()
