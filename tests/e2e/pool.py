"""A pool of milters behind HAProxy, behind a private Postfix.

Pool.start() brings up, under ROOT: the SMTP sink, three example milters
(C, Perl, Python) on TCP ports with PMCORE_METRICS on ports of their own,
HAProxy in TCP mode in front of them, checking each one's GET /health, and
Postfix with one smtpd listener whose smtpd_milters is HAProxy.
Pool.stop() takes everything down again, whatever state it is in.
"""
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from harness import REPO, MilterProc, free_port
from postfix import Postfix
from sink import Sink

BUILD = os.environ.get('BUILD', 'build')
EXAMPLES = {
    'c': os.path.join(REPO, BUILD, 'examples', 'hello_milter'),
    'perl': os.path.join(REPO, 'examples', 'perl', 'header-milter.pl'),
    'python': os.path.join(REPO, 'examples', 'python', 'header_adder.py'),
}
# The header each example adds: tells which instance a delivered message
# went through.
STAMPS = {'c': b'X-Hello:', 'perl': b'X-Header-Milter:',
          'python': b'X-Filtered-By:'}

# Health checks every 200 ms, down after 2 failures, up after 2 successes:
# a stopping milter is out of rotation within half a second.  Timeouts
# longer than anything Postfix or the milters wait for (docs: README,
# "Running more than one milter").
HAPROXY_CFG = """\
global
    log stdout format raw local0
    stats socket {root}/haproxy.sock mode 600 level admin
    nbthread 1

defaults
    mode tcp
    log global
    log-format "%ci:%cp %Ts.%ms %s %Tw/%Tc/%Tt %ts %B %U"
    timeout connect 2s
    timeout client 2h
    timeout server 2h
    retries 3
    option redispatch 1

frontend milter
    bind 127.0.0.1:{port}
    default_backend milters

backend milters
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{servers}
"""


class HAProxy:
    """One haproxy process in the foreground, logging to ROOT/haproxy.log."""

    def __init__(self, root, servers):
        """servers: [(name, port, check_port)]."""
        self.root = root
        self.port = free_port()
        self.cfg = os.path.join(root, 'haproxy.cfg')
        self.logfile = os.path.join(root, 'haproxy.log')
        self.servers = servers
        self.proc = None

    def write_config(self):
        lines = ''.join(f'    server {n} 127.0.0.1:{p} check port {cp}\n'
                        for n, p, cp in self.servers)
        with open(self.cfg, 'w') as f:
            f.write(HAPROXY_CFG.format(root=self.root, port=self.port,
                                       servers=lines))

    def start(self):
        self.write_config()
        log = open(self.logfile, 'ab')
        self.proc = subprocess.Popen(['haproxy', '-db', '-f', self.cfg],
                                     stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        with open(os.path.join(self.root, 'haproxy.pid'), 'w') as f:
            f.write(f'{self.proc.pid}\n')
        end = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(('127.0.0.1', self.port), 1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError('haproxy did not start:\n' +
                                       self.log_tail())
                time.sleep(0.05)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def command(self, line):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(os.path.join(self.root, 'haproxy.sock'))
            s.sendall(line.encode() + b'\n')
            out = b''
            while True:
                more = s.recv(65536)
                if not more:
                    return out.decode()
                out += more

    def status(self):
        """{server: 'UP' | 'DOWN' | ...} from `show stat`."""
        rows = self.command('show stat').splitlines()
        head = rows[0].lstrip('# ').split(',')
        name, status = head.index('svname'), head.index('status')
        out = {}
        for r in rows[1:]:
            f = r.split(',')
            if len(f) > status and f[0] == 'milters' and \
                    f[name] not in ('BACKEND', 'FRONTEND'):
                out[f[name]] = f[status].split()[0]
        return out

    def wait_status(self, server, want, timeout=15):
        end = time.monotonic() + timeout
        while True:
            got = self.status().get(server)
            if got == want:
                return
            if time.monotonic() > end:
                raise TimeoutError(f'haproxy: {server} is {got}, not {want}')
            time.sleep(0.05)

    def connections(self):
        """The logged connections: [(server, start, end)] in seconds since
        the epoch (HAProxy logs a connection when it ends)."""
        rx = re.compile(r' (\d+)\.(\d+) (\S+) -?\d+/-?\d+/(\d+) ')
        out = []
        with open(self.logfile, errors='replace') as f:
            for line in f:
                m = rx.search(line)
                if m:
                    start = int(m.group(1)) + int(m.group(2)) / 1000
                    out.append((m.group(3).split('/')[-1], start,
                                start + int(m.group(4)) / 1000))
        return out

    def log_tail(self, n=30):
        try:
            with open(self.logfile, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except FileNotFoundError:
            return ''


class Instance(MilterProc):
    """An example milter on TCP with its /metrics and /health port."""

    def __init__(self, root, lang):
        self.metrics_port = free_port()
        super().__init__(root, lang, 'inet', script=EXAMPLES[lang],
                         name=lang, env={'PMCORE_METRICS':
                                         f'inet:{self.metrics_port}@127.0.0.1'})

    def http(self, path):
        url = f'http://127.0.0.1:{self.metrics_port}{path}'
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, series):
        _, text = self.http('/metrics')
        m = re.search(rf'^{re.escape(series)} (\S+)$', text, re.M)
        return float(m.group(1)) if m else None

    def kill(self):
        """SIGKILL to the whole process group: a crash."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class Pool:
    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, 'log'), exist_ok=True)
        self.sink = Sink()
        self.milters = {lang: Instance(root, lang) for lang in EXAMPLES}
        self.haproxy = HAProxy(root, [(n, m.port, m.metrics_port)
                                      for n, m in self.milters.items()])
        self.smtp_port = free_port()
        self.postfix = Postfix(root, self.sink.port, {
            'pool': (self.smtp_port, f'inet:127.0.0.1:{self.haproxy.port}')})

    def start(self):
        self.sink.start()
        for m in self.milters.values():
            m.start()
        self.haproxy.start()
        for name in self.milters:
            self.haproxy.wait_status(name, 'UP')
        self.postfix.start()
        return self

    def stop(self):
        errors = []
        for step in [self.postfix.stop, self.haproxy.stop, self.sink.stop,
                     *(m.stop for m in self.milters.values())]:
            try:
                step()
            except Exception as e:  # keep stopping the rest
                errors.append(e)
        if errors:
            raise errors[0]
