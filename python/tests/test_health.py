"""GET /health, what a load balancer checks (PMCORE_METRICS, no code
change): 200 ok while serving; 503 draining once SIGTERM began a stop,
while a conversation inside a message is still served to its end; 503 no
workers while a prefork supervisor has none alive (every worker dies as it
starts, in an os.register_at_fork hook, so the supervisor waits a second
before each replacement)."""
import subprocess
import sys
import textwrap
import time

from test_metrics import (CONV, EXAMPLE, connect, env_with, free_port, get,
                          pkt, read_packets)

VERDICTS = (b'c', b'a', b'r', b't', b'd', b'y')


def health_after_ok(base, secs=5):
    """The first answer that is not 200 ok (the signal is acted on at the
    server's next tick)."""
    end = time.time() + secs
    while True:
        got = get(base + '/health')
        if got != (200, 'ok\n') or time.time() > end:
            return got
        time.sleep(0.02)


def test_healthy_then_draining_with_a_message_in_flight():
    port, mport = free_port(), free_port()
    base = 'http://127.0.0.1:%d' % mport
    p = subprocess.Popen(
        [sys.executable, EXAMPLE, 'inet:%d@127.0.0.1' % port],
        env=env_with(PMCORE_METRICS='inet:%d@127.0.0.1' % mport),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        s = connect(port)
        s.sendall(CONV[0])
        read_packets(s, (b'O',))
        # CONNECT (not answered: the example asked for no reply), HELO,
        # MAIL: inside a message.
        s.sendall(b''.join(CONV[1:4]))
        read_packets(s, VERDICTS)
        assert get(base + '/health') == (200, 'ok\n')
        p.terminate()
        assert health_after_ok(base) == (503, 'draining\n')
        # The rest of the message is served during the drain.
        s.sendall(b''.join(CONV[4:]))
        codes = read_packets(s, VERDICTS, b'h')
        assert codes[-1] == b'c' and b'h' in codes
        assert get(base + '/health') == (503, 'draining\n')
        s.sendall(pkt(b'Q'))
        assert s.recv(1) == b''
        s.close()
        out, err = p.communicate(timeout=15)
        assert p.returncode == 0, err
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


NO_WORKERS = textwrap.dedent('''
    import os, sys
    import Milter
    class M(Milter.Base):
        pass
    # Every worker dies as it starts.
    os.register_at_fork(after_in_child=lambda: os._exit(3))
    Milter.factory = M
    Milter.runmilter('noworkers', sys.argv[1], timeout=30, workers=1)
''')


def test_no_workers(tmp_path):
    port, mport = free_port(), free_port()
    base = 'http://127.0.0.1:%d' % mport
    script = tmp_path / 'm.py'
    script.write_text(NO_WORKERS)
    p = subprocess.Popen(
        [sys.executable, str(script), 'inet:%d@127.0.0.1' % port],
        env=env_with(PMCORE_METRICS='inet:%d@127.0.0.1' % mport),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.time() + 10
        seen = None
        while time.time() < end:
            try:
                seen = get(base + '/health')
            except OSError:
                seen = None  # not listening yet
            if seen == (503, 'no workers\n'):
                break
            time.sleep(0.02)
        assert seen == (503, 'no workers\n')
        p.terminate()
        p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
