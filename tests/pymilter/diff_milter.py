"""The milter of the differential test (tests/pymilter/differential.py).

    python diff_milter.py SOCKETSPEC [rich|noreply|symlist]

Runs unchanged on pymilter 1.0.5 (libmilter) and on our package.  What it
does is chosen by the conversation: the HELO name, the sender's and
recipients' local parts and X-Action headers pick replies and actions, so
one process serves every conversation.  At end of message it adds an
X-Trace header listing what the callbacks received (arguments, macros), so
the reply bytes also compare the callbacks' arguments.
"""
import functools
import sys

import Milter

VARIANT = sys.argv[2] if len(sys.argv) > 2 else 'rich'


def _s(v):
    """One token of the trace: str and bytes shown alike (both are what
    pymilter passes), so only the values are compared."""
    if isinstance(v, bytes):
        v = v.decode('utf-8', 'backslashreplace')
    return str(v)


class DiffMilter(Milter.Base):
    """Every callback overridden (no decorators): every step is sent and
    answered."""

    def __init__(self):
        self.trace = []
        self.actions = set()
        self.body_len = 0

    def t(self, *items):
        self.trace.append(':'.join(_s(i) for i in items))

    def connect(self, hostname, family, hostaddr):
        self.t('conn', hostname, family, hostaddr, self.getsymval('j'),
               self.getsymval('{daemon_name}'))
        if hostname == 'reject.example':
            self.setreply('554', '5.7.1', 'no thanks')
            return Milter.REJECT
        return Milter.CONTINUE

    def hello(self, heloname):
        self.t('helo', heloname)
        if heloname == 'bad.example':
            self.setreply('550', '5.7.1', 'Use a proper HELO name',
                          'second line', 'third line')
            return Milter.REJECT
        if heloname == 'code.example':
            # Not a milter return code (issue #63).
            return Milter.QUARANTINE
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *params):
        self.t('from', mailfrom, *params)
        self.t('auth', self.getsymval('{auth_authen}'), self.getsymval('i'))
        self.trace_rcpts = []
        local = mailfrom.strip('<>').split('@')[0]
        if local == 'tempfail':
            self.setreply('451', '4.7.1', 'Try again later')
            return Milter.TEMPFAIL
        if local == 'reject':
            self.setreply('550', None, 'first', 'second')
            return Milter.REJECT
        if local == 'percent':
            self.setreply('550', '5.7.1', 'only 50%% of senders')
            return Milter.REJECT
        if local == 'keepreply':
            # A reply text set but not used by this callback's verdict.
            self.setreply('550', '5.7.0', 'kept for later')
        if local == 'accept':
            return Milter.ACCEPT
        if local == 'discard':
            return Milter.DISCARD
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        self.t('rcpt', to, *params)
        local = to.strip('<>').split('@')[0]
        if local == 'reject':
            self.setreply('550', '5.1.1', 'No such user here',
                          'and none there')
            return Milter.REJECT
        if local == 'plainreject':
            return Milter.REJECT
        if local == 'tempfail':
            return Milter.TEMPFAIL
        if local == 'raise':
            raise RuntimeError('recipient ' + to)
        return Milter.CONTINUE

    def data(self):
        self.t('data')
        return Milter.CONTINUE

    def header(self, name, value):
        self.t('hdr', name, value)
        if name.lower() == 'x-action':
            v = value.strip()
            self.actions.add(v)
            if v == 'reject-header':
                self.setreply('554', '5.6.0', 'bad header')
                return Milter.REJECT
            if v == 'accept-header':
                return Milter.ACCEPT
            if v == 'raise-header':
                raise ValueError('header')
        return Milter.CONTINUE

    def eoh(self):
        self.t('eoh')
        return Milter.CONTINUE

    def body(self, chunk):
        self.body_len += len(chunk)
        if 'skip-body' in self.actions:
            return Milter.SKIP
        return Milter.CONTINUE

    def eom(self):
        self.t('eom', self.body_len, self.getsymval('i'))
        a = self.actions
        if 'reject-eom' in a:
            self.setreply('550', '5.7.1', 'Message rejected', 'see policy')
            return Milter.REJECT
        if 'tempfail-eom' in a:
            self.setreply('452', '4.3.1', 'Insufficient system storage')
            return Milter.TEMPFAIL
        if 'modify' in a:
            self.addheader('X-Added', 'one')
            self.addheader('X-Inserted', 'at top', 0)
            self.addheader('X-Inserted-2', 'second', 2)
            self.chgheader('Subject', 1, 'changed subject')
            self.chgheader('X-Action', 1, None)
            self.addrcpt('<added@example.org>')
            self.addrcpt('<added2@example.org>', 'NOTIFY=NEVER')
            self.delrcpt('<victim@example.org>')
            self.chgfrom('<new-sender@example.org>', 'SIZE=1000')
            self.progress()
        if 'replacebody' in a:
            self.addheader('X-Before-Body', 'yes')
            self.replacebody(b'replaced body\r\n')
            self.replacebody('second chunk \u00e9\r\n')
        if 'bigbody' in a:
            self.replacebody(b'0123456789abcdef' * 5000)
        if 'quarantine' in a:
            self.quarantine('held for review')
        if 'bytes-header' in a:
            self.addheader('X-Latin1', b'caf\xe9')
        if 'discard-eom' in a:
            return Milter.DISCARD
        self.addheader('X-Trace', ' '.join(self.trace))
        self.trace = []
        return Milter.ACCEPT if 'accept-eom' in a else Milter.CONTINUE

    def unknown(self, cmd):
        self.t('unknown', cmd)
        self.setreply('500', '5.5.1', 'Command unrecognized')
        return Milter.REJECT

    def abort(self):
        self.trace = []
        self.actions = set()
        self.body_len = 0
        return Milter.CONTINUE

    def close(self):
        return Milter.CONTINUE


def fresh(name):
    """A new function calling DiffMilter's method: the decorators mark the
    function they are given (pymilter's @nocallback and @symlist do), so
    the variants must not decorate DiffMilter's own."""
    method = getattr(DiffMilter, name)

    @functools.wraps(method)
    def call(self, *args):
        return method(self, *args)
    return call


class NoReplyMilter(DiffMilter):
    """The common production shape: no replies for the steps that always
    continue, and steps the milter does not need are not sent."""
    connect = Milter.noreply(fresh('connect'))
    hello = Milter.noreply(fresh('hello'))
    eoh = Milter.noreply(fresh('eoh'))
    body = Milter.noreply(fresh('body'))
    data = Milter.nocallback(fresh('data'))
    unknown = Milter.nocallback(fresh('unknown'))


class SymlistMilter(NoReplyMilter):
    """@symlist (documented difference 1: pymilter's negotiation fails on
    Python 3 and falls back to "everything, replies for all")."""
    envfrom = Milter.symlist('{auth_authen}', 'i')(fresh('envfrom'))
    connect = Milter.symlist('j')(Milter.noreply(fresh('connect')))


def main():
    Milter.factory = {'rich': DiffMilter, 'noreply': NoReplyMilter,
                      'symlist': SymlistMilter}[VARIANT]
    Milter.set_flags(Milter.CURR_ACTS)
    sys.stdout.write('diff_milter: %s %s on %s\n'
                     % (VARIANT, sys.argv[1], Milter.__file__))
    sys.stdout.flush()
    Milter.runmilter('diffmilter', sys.argv[1], timeout=60)


if __name__ == '__main__':
    main()
