"""A milter.main() server in a child process and clients for it, shared by
the server and async tests.  The child runs one of this directory's helper
scripts (srv_helper.py, aio_helper.py) in a given mode and prints 'ready'
once it listens.  Tests that start their own child milter on TCP and talk
to it with raw packets (logging, metrics, peer end) share the pieces below
the Server: env_with, free_port and pkt."""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import milter

HERE = os.path.dirname(os.path.abspath(__file__))


def env_with(**kw):
    """The environment for a child python: this directory and the test
    run's own sys.path first, so it imports the same milter build, plus
    the given variables."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([HERE] + [p for p in sys.path if p])
    env.update(kw)
    return env


def free_port():
    """A loopback TCP port that was free a moment ago.  It is closed
    before the child binds it, so another process could take it in
    between; the tests accept that small race."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pkt(cmd, data=b''):
    """One milter protocol packet, as the MTA sends it."""
    return struct.pack('>I', len(data) + 1) + cmd + data


class Client(object):
    """The engine's client on a socket; keeps the socket open with it."""

    def __init__(self, conn, sock):
        self.conn, self.sock = conn, sock

    def __getattr__(self, name):
        return getattr(self.conn, name)


def wait_until(cond, secs=2.0):
    """Poll cond() until it is true or secs have passed; its last value."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def ignores(pid, sig):
    """Whether the process has `sig` at SIG_IGN (its SigIgn mask)."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('SigIgn:'):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    raise AssertionError('no SigIgn in /proc/%d/status' % pid)


STOP_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


def default_stop_signals(ignore=()):
    """For preexec_fn: the child starts with the stop signals at their
    defaults (or ignored, for those in `ignore`) and unblocked, whatever
    the test runner had.  An ignored signal survives exec: under nohup
    SIGHUP is ignored, and a non-interactive shell's `cmd &` ignores SIGINT;
    a milter started from there rightly keeps ignoring them, which is not
    what a test of their default effect wants to see."""
    def reset():
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN if s in ignore else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return reset


class Server(object):
    def __init__(self, helper, mode, sock, ignore=()):
        self.sock = sock
        self.p = subprocess.Popen(
            [sys.executable, os.path.join(HERE, helper), mode, self.sock],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_with(),
            text=True, preexec_fn=default_stop_signals(ignore))
        line = self.p.stdout.readline()
        assert line.strip() == 'ready', (line, self.p.stderr.read())

    def client(self):
        """Connected, negotiated and past CONNECT."""
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        c = Client(milter._TestConn(fd=s.fileno(), timeout_ms=10000), s)
        c.negotiate()
        c.connect('mx', '4', 25, '192.0.2.1')
        return c

    def finish(self, timeout=10):
        out, err = self.p.communicate(timeout=timeout)
        return self.p.returncode, out, err

    def stop(self, timeout=10):
        self.p.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.communicate()
