"""The end-to-end environment: SMTP sink, milters under test, private Postfix.

Env.start() brings up, under one folder: the sink, one milter process per
(language, transport) and one Postfix with an smtpd listener per milter.
Env.stop() takes everything down again, whatever state it is in.
"""
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time

from postfix import Postfix
from sink import Sink

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PERL_INC = ['-I' + os.path.join(REPO, 'perl', 'blib', 'lib'),
            '-I' + os.path.join(REPO, 'perl', 'blib', 'arch')]
# The C milter (tests/e2e/milters/e2e_milter.c), as make builds it.
C_MILTER = os.environ.get('E2E_C_MILTER',
                          os.path.join(REPO, 'build', 'tests', 'e2e_milter'))
LANGS = ('perl', 'python')
TRANSPORTS = ('unix', 'inet')
MILTER_NAMES = tuple(f'{lang}-{t}' for lang in LANGS for t in TRANSPORTS)


def free_port():
    """A TCP port on 127.0.0.1 that nothing uses now, for a server started
    later.  Taken below the kernel's ephemeral range, where other programs'
    outgoing connections would make a later bind fail."""
    for _ in range(100):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', port))
            except OSError:
                continue
            return port
    raise RuntimeError('no free port in 20000-32000')


class MilterProc:
    """One milter process under test, restartable after a test stopped it."""

    # The umask it starts with (-1: the suite's own).
    umask = -1

    def __init__(self, root, lang, transport, script=None, name=None,
                 env=None):
        """SCRIPT: a milter taking just its socket spec (default: the
        suite's own milter of LANG, which also takes its control folder);
        a program when LANG is 'c'.  ENV: extra environment variables."""
        self.name = name or f'{lang}-{transport}'
        self.lang = lang
        self.script = script
        self.env = dict(os.environ, **env) if env else None
        self.transport = transport
        self.ctl = os.path.join(root, 'ctl', self.name)
        self.logfile = os.path.join(root, 'log', f'milter-{self.name}.log')
        os.makedirs(self.ctl, exist_ok=True)
        os.chmod(os.path.join(root, 'ctl'), 0o755)
        os.chmod(self.ctl, 0o755)  # holds the unix socket for user postfix
        if transport == 'unix':
            self.path = os.path.join(self.ctl, 'milter.sock')
            self.spec = 'unix:' + self.path          # the milter's syntax
            self.postfix_spec = 'unix:' + self.path  # Postfix's syntax
        else:
            self.port = free_port()
            self.spec = f'inet:{self.port}@127.0.0.1'
            self.postfix_spec = f'inet:127.0.0.1:{self.port}'
        self.proc = None

    def command(self):
        if self.script:
            args = [self.script, self.spec]
        elif self.lang == 'c':
            return [C_MILTER, self.spec, self.ctl]
        else:
            ext = '.pl' if self.lang == 'perl' else '.py'
            args = [os.path.join(HERE, 'milters', 'e2e_milter' + ext),
                    self.spec, self.ctl]
        if self.lang == 'perl':
            return ['perl', *PERL_INC, *args]
        if self.lang == 'c':
            return args
        return [sys.executable, *args]

    def start(self):
        log = open(self.logfile, 'ab')
        # Its own process group, which a Perl milter's per-connection
        # children share: stopping the group stops them all.
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     umask=self.umask, start_new_session=True)
        log.close()
        # For run.sh's cleanup, should pytest be killed before the fixtures
        # could stop the milter.
        with open(os.path.join(self.ctl, 'milter.pid'), 'w') as f:
            f.write(f'{self.proc.pid}\n')
        self.wait_ready()

    def wait_ready(self, timeout=15):
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f'milter {self.name} exited '
                                   f'({self.proc.returncode}):\n{self.log_tail()}')
            try:
                if self.transport == 'unix':
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(self.path)
                else:
                    socket.create_connection(('127.0.0.1', self.port), 1).close()
                return
            except OSError:
                if time.monotonic() > end:
                    raise RuntimeError(f'milter {self.name} not listening:\n'
                                       f'{self.log_tail()}')
                time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self):
        if not self.alive():
            self.start()

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Workers left in the group (none after a clean stop).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None
        try:
            os.unlink(os.path.join(self.ctl, 'milter.pid'))
        except FileNotFoundError:
            pass

    def log_tail(self, n=30):
        try:
            with open(self.logfile, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except FileNotFoundError:
            return ''

    def set_connect_verdict(self, verb):
        """What the milter answers at connect from now on (None: continue)."""
        path = os.path.join(self.ctl, 'connect')
        if verb is None:
            if os.path.exists(path):
                os.unlink(path)
            return
        with open(path + '.tmp', 'w') as f:
            f.write(verb + '\n')
        os.rename(path + '.tmp', path)


class Env:
    def __init__(self, root, milters=None):
        """MILTERS: {name: MilterProc}; default: the suite's four."""
        self.root = root
        os.makedirs(os.path.join(root, 'log'), exist_ok=True)
        self.sink = Sink()
        self.milters = milters or {n: MilterProc(root, *n.split('-'))
                                   for n in MILTER_NAMES}
        self.ports = {n: free_port() for n in self.milters}
        self.postfix = Postfix(root, self.sink.port, {
            n: (self.ports[n], m.postfix_spec) for n, m in self.milters.items()})
        # The MTA that start() and stop() run: sendmail.SendmailEnv keeps
        # these two methods and puts its Sendmail here instead.
        self.mta = self.postfix

    def start(self):
        self.sink.start()
        for m in self.milters.values():
            m.start()
        self.mta.start()
        return self

    def stop(self):
        errors = []
        for step in [self.mta.stop, self.sink.stop,
                     *(m.stop for m in self.milters.values())]:
            try:
                step()
            except Exception as e:  # keep stopping the rest
                errors.append(e)
        if errors:
            raise errors[0]

    def client(self, name, helo='client.e2e.test'):
        return Client(self, name, helo)


class SMTPReply(Exception):
    """An SMTP command got CODE TEXT instead of success."""

    def __init__(self, command, code, text):
        super().__init__(f'{command}: {code} {text!r}')
        self.command, self.code, self.text = command, code, text


class Client:
    """An SMTP session to the listener in front of milter NAME."""

    # Where the reply to the final dot names the queue id (Postfix's form).
    QUEUED = r'queued as ([0-9A-Za-z]+)'

    def __init__(self, env, name, helo):
        self.env = env
        self.smtp = smtplib.SMTP('127.0.0.1', env.ports[name], timeout=60)
        self.helo = helo

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()

    def check(self, command, reply):
        code, text = reply
        if not 200 <= code < 400:
            raise SMTPReply(command, code, text.decode('utf-8', 'replace'))
        return text.decode('utf-8', 'replace')

    def ehlo(self):
        return self.check('EHLO', self.smtp.ehlo(self.helo))

    def send(self, sender, rcpts, message):
        """One transaction; returns the queue id Postfix reported."""
        if not self.smtp.does_esmtp:
            self.ehlo()
        self.check('MAIL', self.smtp.mail(sender))
        for r in rcpts:
            self.check('RCPT', self.smtp.rcpt(r))
        text = self.check('DATA', self.smtp.data(message))
        m = re.search(self.QUEUED, text)
        assert m, f'no queue id in {text!r}'
        return m.group(1)

    def rset(self):
        return self.check('RSET', self.smtp.rset())


class RawSMTP:
    """A line-level SMTP session, for tests that look at every reply line."""

    def __init__(self, env, name):
        self.sock = socket.create_connection(('127.0.0.1', env.ports[name]), 60)
        self.file = self.sock.makefile('rb')
        self.greeting = self.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read(self):
        """The next reply: its lines, without CRLF, as str."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError(f'connection closed after {lines}')
            lines.append(line.rstrip(b'\r\n').decode('utf-8', 'replace'))
            if line[3:4] != b'-':
                return lines

    def cmd(self, line):
        self.sock.sendall(line.encode() + b'\r\n')
        return self.read()

    def data(self, msg):
        """DATA and the message; the reply to the final dot."""
        first = self.cmd('DATA')
        if not first[0].startswith('354'):
            return first
        stuffed = re.sub(rb'(?m)^\.', b'..', msg)
        if not stuffed.endswith(b'\r\n'):
            stuffed += b'\r\n'
        self.sock.sendall(stuffed + b'.\r\n')
        return self.read()

    def close(self):
        try:
            self.cmd('QUIT')
        except OSError:
            pass
        self.file.close()
        self.sock.close()


def queue_id(reply):
    """The queue id in Postfix's reply to the final dot."""
    m = re.search(r'queued as ([0-9A-Za-z]+)', reply[-1])
    assert m and reply[-1].startswith('250 '), reply
    return m.group(1)


def message(headers=(), body=b'original body\r\n', mode=None):
    """A message as bytes with CRLF line ends; HEADERS: (name, bytes|str)."""
    lines = [b'From: sender@sink.test', b'To: rcpt@sink.test',
             b'Subject: e2e test']
    if mode:
        lines.append(b'X-E2E-Mode: ' + mode.encode())
    for name, value in headers:
        if isinstance(value, str):
            value = value.encode()
        lines.append(name.encode() + b': ' + value)
    return b'\r\n'.join(lines) + b'\r\n\r\n' + body


def split_message(data):
    """(headers, body): headers as [(name, raw value bytes)], unfolded."""
    head, _, body = data.partition(b'\r\n\r\n')
    headers = []
    for line in head.split(b'\r\n'):
        if line[:1] in (b' ', b'\t') and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + b'\r\n' + line)
        else:
            name, _, value = line.partition(b':')
            headers.append((name.decode('ascii'), value[1:] if value[:1] == b' ' else value))
    return headers, body


def header_values(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


def make_body(size):
    """What the milters' body=SIZE mode puts in: CRLF lines of 10 to 909
    characters cycling through the printable ASCII set (dots first in some
    lines, so both SMTP hops dot-stuff), the last line cut to fit SIZE."""
    chars = ''.join(chr(c) for c in range(33, 127)) * 12
    lines, total, k = [], 0, 0
    while size - total > 1000:
        line = chars[k % 94:k % 94 + 10 + (k * 37) % 900] + '\r\n'
        lines.append(line)
        total += len(line)
        k += 1
    lines.append(chars[k % 94:k % 94 + size - total - 2] + '\r\n')
    return ''.join(lines).encode('ascii')
