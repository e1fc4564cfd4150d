"""milter.main() on the libpmcore server, in a child process: serving,
signals, stop, sys.exit, re-running, and the thread pool."""
import signal
import socket
import threading
import time

import milter
import serving
import pytest


def Server(mode, tmp_path, **kw):
    return serving.Server('srv_helper.py', mode, str(tmp_path / 'm.sock'),
                          **kw)


def quit_after_stop(c):
    """A stop serves a connection until the MTA's QUIT, which ends it; a
    milter that exits (sys.exit in a callback) may have closed it before
    the QUIT arrives."""
    try:
        c.quit()
    except milter.error as e:
        assert 'Broken pipe' in str(e) or 'reset' in str(e), e


def refused(path):
    """Whether the listener on `path` is closed (a probe that still got in
    is let go at once: an EOF the drain serves)."""
    k = socket.socket(socket.AF_UNIX)
    try:
        k.connect(path)
        return False
    except ConnectionRefusedError:
        return True
    finally:
        k.close()


def message(c, sender=b'<a@x>'):
    c.mail([sender])
    c.rcpt([b'<b@x>'])
    c.header(b'Subject', b's')
    return c.eom()


@pytest.fixture
def server(tmp_path):
    made = []

    def make(mode, **kw):
        s = Server(mode, tmp_path, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.kill()


def test_serves_and_sigterm_drains(server):
    s = server('term')
    c = s.client()
    assert message(c)[2] == [('h', 0, b'X-Served', b'term')]
    c.mail([b'<a@x>'])                      # a message in progress
    s.p.send_signal(signal.SIGTERM)
    # The stop closes the listener: only from then on is the rest of the
    # message served by the drain (a sleep could let it be served before
    # the stop began).
    assert serving.wait_until(lambda: refused(s.sock), 10)
    c.rcpt([b'<b@x>'])                      # still served: drain
    r = c.eom()
    assert r[0] == 'c'
    quit_after_stop(c)
    rc, out, err = s.finish()
    assert rc == 0 and 'main returned None' in out, (out, err)


def test_sighup_returns(server):
    s = server('hup')
    c0 = s.client()  # main() runs (its signal handlers are installed)
    c0.quit()
    s.p.send_signal(signal.SIGHUP)
    rc, out, err = s.finish()
    assert rc == 0 and 'main returned None' in out, err


def test_inherited_ignored_sighup_stays_ignored(server):
    """Started under nohup (SIGHUP ignored), the milter outlives a hangup:
    main() only stops on SIGHUP left at its default."""
    s = server('hup', ignore=(signal.SIGHUP,))
    c0 = s.client()
    c0.quit()
    # main() runs: a stop handler installed over the inherited SIG_IGN
    # shows here, where a sleep before poll() could not tell a slow tick
    # from a hangup ignored.
    assert serving.ignores(s.p.pid, signal.SIGHUP)
    s.p.send_signal(signal.SIGHUP)
    assert s.p.poll() is None
    c = s.client()
    assert message(c)[2] == [('h', 0, b'X-Served', b'hup')]
    c.quit()
    rc, out, err = s.stop()
    assert rc == 0 and 'main returned None' in out, (out, err)


def test_sigint_raises_keyboardinterrupt_promptly(server):
    s = server('int')
    c = s.client()
    t0 = time.monotonic()
    s.p.send_signal(signal.SIGINT)
    rc, out, err = s.finish()
    assert 'KeyboardInterrupt' in out and rc == 130, (out, err)
    assert time.monotonic() - t0 < 2.0
    del c


def test_user_signal_handler_runs_during_main(server):
    s = server('usr1')
    c0 = s.client()
    c0.quit()
    s.p.send_signal(signal.SIGUSR1)
    # Its handler ran during main(), then main() goes on serving.
    assert s.p.stdout.readline().strip() == 'usr1 handled'
    c = s.client()
    assert message(c)[0] == 'c'             # still serving
    c.quit()
    s.p.send_signal(signal.SIGTERM)
    rc, out, err = s.finish()
    assert 'main returned' in out, (out, err)


def test_sys_exit_in_callback_ends_milter(server):
    s = server('exit')
    c = s.client()
    r = c.mail([b'<exit@x>'])
    assert r[0] == 'y' and r[1].startswith(b'451 4.3.0')
    quit_after_stop(c)
    rc, out, err = s.finish()
    assert rc == 5, (out, err)


def test_main_twice_and_stop(server):
    s = server('twice')
    c = s.client()
    assert message(c)[0] == 'c'
    c.quit()
    line = s.p.stdout.readline()
    assert line.strip() == 'main 0 returned'
    assert s.p.stdout.readline().strip() == 'ready'
    time.sleep(0.2)
    c = s.client()
    assert message(c)[2] == [('h', 0, b'X-Served', b'twice')]
    c.quit()
    s.kill()


def test_main_in_use(server):
    s = server('inuse')
    rc, out, err = s.finish()
    assert 'second: milter module in use' in out, (out, err)
    assert 'main returned None' in out


def test_slow_callback_stalls_only_its_connection(server):
    s = server('pool')
    slow = s.client()
    done = []

    def run_slow():
        done.append(message(slow, b'<slow@x>')[0])
    t = threading.Thread(target=run_slow)
    t.start()
    # The slow envfrom holds its worker until the fast EOM was served, or
    # for 10 s if the pool made the fast connection wait behind it.
    assert s.p.stdout.readline().strip() == 'slow in envfrom'
    t0 = time.monotonic()
    fast = s.client()
    assert message(fast)[0] == 'c'
    elapsed = time.monotonic() - t0
    t.join()
    assert done == ['c']
    assert elapsed < 5, elapsed
    fast.quit()
    slow.quit()
    s.p.send_signal(signal.SIGTERM)
    assert s.finish()[0] == 0


def test_callbacks_in_order_one_at_a_time(server):
    """8 connections at once on the thread pool: each connection's
    callbacks run in protocol order and never overlap."""
    s = server('order')
    results = []

    def worker():
        c = s.client()
        for _ in range(15):
            c.mail([b'<a@x>'])
            c.rcpt([b'<b@x>'])
            c.header(b'Subject', b's')
            c.header(b'X-A', b'v')
            c.eoh()
            c.body(b'body\r\n')
            results.append(c.eom()[2])
        c.quit()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 120
    assert all(r == [('h', 0, b'X-Order', b'ok')] for r in results), \
        [r for r in results if r != [('h', 0, b'X-Order', b'ok')]][:3]
    s.p.send_signal(signal.SIGTERM)
    assert s.finish()[0] == 0
