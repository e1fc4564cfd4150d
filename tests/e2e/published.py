"""Published milters, run unchanged on pmcore's bindings behind Postfix and
Sendmail.

scripts/setup.d/70-published-milters.sh puts them in build/published/:
pymilter 1.0.5's sample.py, dkimpy-milter 1.2.3 and spf-engine 3.1.0's
pyspf-milter (from PyPI, pinned, without pymilter: the suite's venv has
pmcore's `milter` and `Milter`), and Debian's Mail::Milter 0.07, whose
modules tests/e2e/milters/mail_milter_chain.pl strings together.  Each gets
the configuration a site would write, generated here, and listens where the
suite says; its code is not touched.

PublishedEnv is harness.Env with these milters, under ROOT/published (its
own Postfix instance, so the main suite's environment is not changed), plus
a Sendmail (sendmail.py) in front of the same milter processes; Front is
the door to one MTA or the other.
"""
import os
import subprocess
import sys

import sendmail
from harness import (HERE, PERL_INC, REPO, Client, Env, MilterProc, RawSMTP,
                     free_port)

PUBLISHED = os.environ.get('E2E_PUBLISHED_DIR',
                           os.path.join(REPO, 'build', 'published'))
PY_DIR = os.path.join(PUBLISHED, 'py')
SAMPLE = os.path.join(PUBLISHED, 'pymilter-1.0.5', 'sample.py')
MAIL_MILTER_LIB = os.path.join(PUBLISHED, 'perl', 'usr', 'share', 'perl5')
# The domain the DKIM milter signs for, and its selector.
DKIM_DOMAIN = 'sink.test'
DKIM_SELECTOR = 'e2e'
AUTHSERV_ID = 'e2e.pmcore.test'


def available():
    """None when build/published is complete, else what is missing."""
    for path in (SAMPLE, os.path.join(PY_DIR, 'bin', 'dkimpy-milter'),
                 os.path.join(PY_DIR, 'bin', 'pyspf-milter'),
                 os.path.join(MAIL_MILTER_LIB, 'Mail', 'Milter', 'Chain.pm')):
        if not os.path.exists(path):
            return f'{path} (scripts/setup.d/70-published-milters.sh)'
    return None


def _py_env(**extra):
    env = dict(os.environ, PYTHONPATH=PY_DIR, **extra)
    env.pop('PYTHONHOME', None)
    return env


class SampleMilter(MilterProc):
    """pymilter's sample.py: it listens on $HOME/pythonsock, so HOME is its
    control folder; umask 0 lets Postfix's smtpd (user postfix) connect."""

    umask = 0

    def __init__(self, root):
        super().__init__(root, 'python', 'unix', name='pymilter-sample')
        self.path = os.path.join(self.ctl, 'pythonsock')
        self.spec = self.path
        self.postfix_spec = 'unix:' + self.path
        self.env = dict(os.environ, HOME=self.ctl)

    def command(self):
        return [sys.executable, SAMPLE]


class ConfiguredMilter(MilterProc):
    """A milter that reads its socket and settings from a file we write.
    Both drop privileges to UserID after start; it is root here, since the
    suite's interpreter may live where other users cannot read (a pyenv
    under /root), and a module imported late would fail."""

    program = None  # under build/published/py/bin

    def __init__(self, root, name):
        super().__init__(root, 'python', 'inet', name=name)
        self.conf = os.path.join(self.ctl, name + '.conf')
        self.env = _py_env()

    def command(self):
        return [sys.executable, os.path.join(PY_DIR, 'bin', self.program),
                self.conf]

    def start(self):
        with open(self.conf, 'w') as f:
            f.write(self.config())
        pid = os.path.join(self.ctl, 'own.pid')
        if os.path.exists(pid):  # both refuse to overwrite their pid file
            os.unlink(pid)
        super().start()


class DkimpyMilter(ConfiguredMilter):
    """dkimpy-milter signing for DKIM_DOMAIN with a key made here.  Mail
    from 127.0.0.1 (its default InternalHosts) is signed, not verified."""

    program = 'dkimpy-milter'

    def __init__(self, root):
        super().__init__(root, 'dkimpy-milter')
        self.key = os.path.join(self.ctl, 'dkim.key')
        subprocess.run(['openssl', 'genrsa', '-traditional', '-out',
                        self.key, '2048'], check=True, capture_output=True)
        der = subprocess.run(['openssl', 'rsa', '-in', self.key, '-pubout',
                              '-outform', 'DER'], check=True,
                             capture_output=True).stdout
        import base64
        self.dns_txt = (b'v=DKIM1; k=rsa; p=' + base64.b64encode(der))

    def config(self):
        return (f'Syslog no\nUMask 0\nSocket {self.spec}\n'
                f'PidFile {self.ctl}/own.pid\nUserID root:root\nMode sv\n'
                f'Domain {DKIM_DOMAIN}\nSelector {DKIM_SELECTOR}\n'
                f'KeyFile {self.key}\nInternalHosts 127.0.0.1\n'
                f'Canonicalization relaxed/simple\n'
                f'AuthservID {AUTHSERV_ID}\n')


class SpfMilter(ConfiguredMilter):
    """spf-engine's pyspf-milter.  127.0.0.1 is made an external client
    (InternalHosts elsewhere) so the check runs; it is in skip_addresses,
    so the result is the "none, local connection" header and no DNS query
    is made."""

    program = 'pyspf-milter'

    def __init__(self, root):
        super().__init__(root, 'pyspf-milter')

    def config(self):
        return (f'debugLevel = 0\nTestOnly = 1\nHeader_Type = AR\n'
                f'Authserv_Id = {AUTHSERV_ID}\n'
                f'skip_addresses = 127.0.0.0/8\n'
                f'InternalHosts = 192.0.2.1\n'
                f'Socket = {self.spec}\nPidFile = {self.ctl}/own.pid\n'
                f'UserID = root:root\nUMask = 0\n')


class MailMilterChain(MilterProc):
    """Mail::Milter modules in a chain (milters/mail_milter_chain.pl) on
    Sendmail::PMilter from perl/blib."""

    def __init__(self, root):
        super().__init__(root, 'perl', 'unix', name='mail-milter-chain')

    def command(self):
        return ['perl', *PERL_INC, '-I' + MAIL_MILTER_LIB,
                os.path.join(HERE, 'milters', 'mail_milter_chain.pl'),
                self.spec]


def published_milters(root):
    return {m.name: m for m in (SampleMilter(root), DkimpyMilter(root),
                                SpfMilter(root), MailMilterChain(root))}


class PublishedEnv(Env):
    def __init__(self, root):
        os.makedirs(os.path.join(root, 'log'), exist_ok=True)
        # Postfix's daemons (user postfix) walk down from the suite's folder.
        os.chmod(os.path.dirname(root), 0o755)
        super().__init__(root, published_milters(root))
        # Sendmail too, when build/sendmail is there (test_published.py
        # says when it is not).
        self.sm_ports = {n: free_port() for n in self.milters}
        self.sendmail = None
        if sendmail.available() is None:
            self.sendmail = sendmail.Sendmail(
                os.path.join(root, 'sendmail'), self.sink.port,
                {n: (self.sm_ports[n], _sendmail_spec(m))
                 for n, m in self.milters.items()})

    def start(self):
        super().start()
        if self.sendmail:
            self.sendmail.start()
        return self

    def stop(self):
        try:
            if self.sendmail:
                self.sendmail.stop()
        finally:
            super().stop()


def _sendmail_spec(m):
    """Sendmail's S= for milter M (sample.py's spec is a bare path)."""
    return 'unix:' + m.path if m.transport == 'unix' else m.spec


class Front:
    """One MTA of a PublishedEnv: 'postfix' or 'sendmail'."""

    def __init__(self, env, mta):
        self.env, self.mta = env, mta
        self.ports = env.ports if mta == 'postfix' else env.sm_ports

    def client(self, name, helo='client.e2e.test'):
        cls = Client if self.mta == 'postfix' else sendmail.SendmailClient
        return cls(self, name, helo)

    def raw(self, name):
        return RawSMTP(self, name)

    def delivered(self, qid):
        """The sink's transaction for QID, once the MTA is done with it."""
        if self.mta == 'postfix':
            self.env.postfix.wait_removed(qid)
        return self.env.sink.wait(qid)
