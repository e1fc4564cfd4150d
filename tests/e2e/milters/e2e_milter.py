"""The Python milter of the end-to-end suite (pymilter's API on libpmcore).

    e2e_milter.py SOCKET CTLDIR

Each message says what the milter does to it; tests/e2e/README.md
is the contract shared with e2e_milter.pl.  CTLDIR holds the few switches
a message cannot carry (what to do at connect) and the files of the
SIGTERM test.
"""
import os
import sys
import time

import Milter

LANG = 'python'
# Macros recorded at each stage, as Postfix sends them by default.
STAGE_MACROS = {
    'connect': ('j', '{daemon_name}', '{daemon_addr}', 'v', '_'),
    'mail': ('{mail_addr}',),
    'rcpt': ('{rcpt_addr}',),
    'eom': ('i',),
}
ALPHABET = ''.join(chr(c) for c in range(33, 127))


def make_body(size):
    """SIZE bytes of CRLF lines of varying length (same as the Perl milter)."""
    rep = (ALPHABET * 12).encode()
    out, total, k = [], 0, 0
    while size - total > 1000:
        n = 10 + (k * 37) % 900
        line = rep[k % 94:k % 94 + n] + b'\r\n'
        out.append(line)
        total += len(line)
        k += 1
    out.append(rep[k % 94:k % 94 + size - total - 2] + b'\r\n')
    return b''.join(out)


def verdict_of(text, prefix):
    """'reject' for PREFIX-reject..., etc.; None when TEXT is no command."""
    for verb in ('reject', 'tempfail', 'discard', 'die'):
        if text.startswith(f'{prefix}-{verb}'):
            return verb
    return None


def local_part(addr):
    return addr.strip('<>').split('@')[0]


class E2EMilter(Milter.Base):
    """One object per SMTP connection; per-message state is reset at MAIL."""

    def __init__(self):
        self.ctl = CTLDIR
        self.done = 0
        self.macros = []
        self.conn_macros = []
        self.new_message()

    def new_message(self):
        self.modes = []
        self.rcpts = []
        self.headers = []
        self.macros = list(self.conn_macros)

    def record(self, stage):
        for name in STAGE_MACROS[stage]:
            self.macros.append((stage, name, self.getsymval(name)))

    def refuse(self, stage, verb):
        if verb == 'die':
            raise RuntimeError(f'e2e {LANG} raises at {stage}')
        if verb == 'discard':
            return Milter.DISCARD
        code, xcode = ('550', '5.7.1') if verb == 'reject' else ('451', '4.7.1')
        self.setreply(code, xcode, f'e2e {LANG} {verb}s at {stage}',
                      f'second line from {LANG}')
        return Milter.REJECT if verb == 'reject' else Milter.TEMPFAIL

    def connect(self, hostname, family, hostaddr):
        self.record('connect')
        self.conn_macros = list(self.macros)
        try:
            with open(os.path.join(self.ctl, 'connect')) as f:
                verb = f.read().strip()
        except FileNotFoundError:
            verb = None
        return self.refuse('connect', verb) if verb else Milter.CONTINUE

    def hello(self, hostname):
        verb = verdict_of(hostname, 'helo')
        return self.refuse('helo', verb) if verb else Milter.CONTINUE

    def envfrom(self, mailfrom, *params):
        self.new_message()
        self.record('mail')
        verb = verdict_of(local_part(mailfrom), 'mail')
        return self.refuse('mail', verb) if verb else Milter.CONTINUE

    def envrcpt(self, to, *params):
        self.record('rcpt')
        verb = verdict_of(local_part(to), 'rcpt')
        if verb:
            return self.refuse('rcpt', verb)
        self.rcpts.append(to)
        return Milter.CONTINUE

    def header(self, name, value):
        # value is str decoded with surrogateescape: the original bytes
        # come back when it is encoded again, as addheader does.
        self.headers.append((name, value))
        if name.lower() == 'x-e2e-mode':
            self.modes.extend(value.split())
        return Milter.CONTINUE

    def abort(self):
        self.new_message()
        return Milter.CONTINUE

    def eom(self):
        self.record('eom')
        modes = self.modes
        if 'slow' in modes:
            self.wait_release()
        for m in modes:
            verb = verdict_of(m, 'eom')
            if verb:
                return self.refuse('eom', verb)
        for m in modes:
            self.apply(m)
        self.done += 1
        self.addheader('X-E2E-Milter', f'{LANG} msg={self.done} rcpts='
                       + ','.join(local_part(r) for r in self.rcpts))
        return Milter.CONTINUE

    def apply(self, mode):
        name, _, arg = mode.partition('=')
        if name == 'addhdr':
            self.addheader('X-Added', f'added by {LANG}')
        elif name == 'inshdr':
            self.addheader('X-Inserted', f'inserted by {LANG}', int(arg))
        elif name == 'chghdr':
            self.chgheader('Subject', 1, f'changed by {LANG}')
        elif name == 'delhdr':
            self.chgheader('X-Drop', 2, None)
        elif name == 'body':
            self.replacebody(make_body(int(arg)))
        elif name == 'addrcpt':
            for i in range(1, int(arg) + 1):
                self.addrcpt(f'<added-{i:03d}@sink.test>')
        elif name == 'addrcpt_par':
            self.addrcpt('<par@sink.test>', arg.replace('+', ' '))
        elif name == 'delrcpt':
            for r in self.rcpts:
                if local_part(r).startswith('del-'):
                    self.delrcpt(r)
        elif name == 'chgfrom':
            self.chgfrom(f'<{arg}>')
        elif name == 'quarantine':
            self.quarantine(f'e2e {LANG} quarantine')
        elif name == 'seen':
            self.addheader('X-E2E-Seen', ','.join(n for n, _ in self.headers))
        elif name == 'macros':
            for stage, mname, value in self.macros:
                self.addheader('X-E2E-Macro', f'{stage} {mname}={value}')
        elif name == 'echo8':
            for hname, value in self.headers:
                if hname in ('X-Latin1', 'X-Utf8'):
                    self.addheader('X-Echo-' + hname[2:], value)
            self.chgheader('X-Change-Me', 1, b'\xe9t\xe9 \xa4')

    def wait_release(self):
        """The SIGTERM test: say we are in eom, then wait to be released."""
        open(os.path.join(self.ctl, 'slow-entered'), 'w').close()
        release = os.path.join(self.ctl, 'slow-release')
        end = time.monotonic() + 30
        while not os.path.exists(release) and time.monotonic() < end:
            time.sleep(0.02)


def main(argv):
    global CTLDIR
    sock, CTLDIR = argv[1], argv[2]
    os.umask(0)  # Postfix's smtpd (user postfix) must reach a unix socket
    Milter.factory = E2EMilter
    Milter.runmilter(f'e2e-{LANG}', sock, timeout=60)


if __name__ == '__main__':
    main(sys.argv)
