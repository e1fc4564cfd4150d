"""The milter module calls the Milter object's methods itself when the
registered callbacks are Milter's standard ones (dispatch.c).  Every case
here runs twice, through that shortcut and through the Python functions
alone (the same callbacks without their _milter_std mark), and both runs
must see the same calls, argument types and results."""
import Milter
import pytest
from Milter.testctx import TestCtx

PARAMS = ['SIZE=%d' % i for i in range(11)]  # more than the C stack arrays


def _plain_callbacks(orig):
    def table():
        return {k: (lambda *a, f=f: f(*a)) for k, f in orig().items()}
    return table


def _typed(args):
    return tuple((type(a).__name__, a) for a in args)


class Rec(Milter.Base):
    def __init__(self):
        self.seen = []

    def connect(self, host, fam, addr):
        self.seen.append(('connect', _typed((host, fam, addr))))
        return Milter.CONTINUE

    def hello(self, h):
        self.seen.append(('hello', _typed((h,))))
        return Milter.CONTINUE

    def envfrom(self, f, *p):
        self.seen.append(('envfrom', _typed((f,) + p)))
        return Milter.CONTINUE

    def envrcpt(self, t, *p):
        self.seen.append(('envrcpt', _typed((t,) + p)))
        return Milter.CONTINUE

    def data(self):
        self.seen.append(('data', ()))
        return Milter.CONTINUE

    def header(self, n, v):
        self.seen.append(('header', _typed((n, v))))
        return Milter.CONTINUE

    def eoh(self):
        self.seen.append(('eoh', ()))
        return Milter.CONTINUE

    def body(self, b):
        self.seen.append(('body', _typed((b,))))
        return Milter.CONTINUE

    def unknown(self, cmd):
        self.seen.append(('unknown', _typed((cmd,))))
        return Milter.CONTINUE

    def eom(self):
        self.seen.append(('eom', ()))
        return Milter.CONTINUE


def _strategy(st):
    class M(Rec):
        envfrom = Milter.decode(st)(Rec.envfrom)
        envrcpt = Milter.decode(st)(Rec.envrcpt)
        header = Milter.decode(st)(Rec.header)
    return M


class NoReplyDecoded(Rec):
    header = Milter.noreply(Milter.decode('bytes')(Rec.header))
    envfrom = Milter.decode('ignore')(Milter.noreply(Rec.envfrom))


class OwnBytes(Rec):
    def header_bytes(self, fld, val):
        self.seen.append(('header_bytes', _typed((fld, val))))
        return Milter.CONTINUE

    def envfrom_bytes(self, *b):
        self.seen.append(('envfrom_bytes', _typed(b)))
        return Milter.CONTINUE


class InstanceMethods(Rec):
    def connect(self, *a):
        def header(n, v):
            self.seen.append(('inst header', _typed((n, v))))
            return Milter.CONTINUE
        self.header = header  # not a bound method: no strategy of its own
        self.eoh = lambda: Milter.TEMPFAIL
        return Rec.connect(self, *a)


class DropsPriv(Rec):
    def envfrom(self, f, *p):
        Rec.envfrom(self, f, *p)
        self._ctx.setpriv(None)  # later callbacks find no object
        return Milter.CONTINUE


class Falsy(Rec):
    def __len__(self):
        return 0


class BadReturn(Rec):
    def header(self, n, v):
        Rec.header(self, n, v)
        return 'yes'


CASES = [Rec, _strategy('bytes'), _strategy('strict'), _strategy('ignore'),
         _strategy('replace'), _strategy('nosuch-handler'), _strategy(7),
         _strategy('a\0b'), NoReplyDecoded, OwnBytes, InstanceMethods,
         DropsPriv, Falsy, BadReturn]


def _run(klass):
    Milter.factory = klass
    ctx = TestCtx()
    rcs = [ctx._connect(helo='h\xe9lo'),
           ctx._envfrom('<caf\udce9@x>', *PARAMS),
           ctx._envrcpt(b'<r\xff@y>', 'NOTIFY=NEVER'),
           ctx._data(),
           ctx._header('Subject', b'caf\xe9 \xff'),
           ctx._header('X-Ok', 'plain'),
           ctx._eoh(),
           ctx._unknown('HELP me')]
    m = ctx.getpriv()
    seen = list(getattr(m, 'seen', ())) if m is not None else None
    return rcs, seen


@pytest.mark.parametrize('klass', CASES, ids=lambda k: k.__name__ +
                         repr(getattr(k.header, 'error_strategy', '')))
def test_shortcut_matches_python_path(klass, monkeypatch, capsys):
    fast = _run(klass)
    monkeypatch.setattr(Milter, '_callbacks',
                        _plain_callbacks(Milter._callbacks))
    slow = _run(klass)
    assert fast == slow
    # Errors were reported the same way too (the exception policy ran).
    err = capsys.readouterr().err
    assert err.count('Traceback') % 2 == 0


def test_shortcut_is_taken():
    """The standard callbacks carry the mark the C side looks for."""
    cb = Milter._callbacks()
    assert cb['header']._milter_std == ('header_bytes',
                                        Milter.Base.header_bytes, 'header')
    assert cb['helo']._milter_std == ('hello', None, None)
    assert not hasattr(cb['close'], '_milter_std')
    assert not hasattr(cb['negotiate'], '_milter_std')


def test_falsy_object_is_replaced_at_connect():
    """connect_callback makes a new object when getpriv() is falsy; the
    shortcut leaves that case to it."""
    rcs, seen = _run(Falsy)
    assert rcs[0] == Milter.CONTINUE
    assert seen and seen[0][0] == 'connect'


def _changing_run():
    """Headers with the method, its @decode strategy, the class's and the
    instance's header_bytes changed between them: every change is seen by
    the next header (what the C side may remember must not outlive it)."""
    class M(Rec):  # its own methods: _strategy() marks Rec's
        def envfrom(self, f, *p):
            return Milter.CONTINUE

        def header(self, n, v):
            self.seen.append(('header', _typed((n, v))))
            return Milter.CONTINUE

    def new_header(self, n, v):
        self.seen.append(('new header', _typed((n, v))))
        return Milter.CONTINUE

    def own_bytes(self, n, v):
        self.seen.append(('class header_bytes', _typed((n, v))))
        return Milter.CONTINUE

    Milter.factory = M
    ctx = TestCtx()
    ctx._connect()
    ctx._envfrom('<a@b>')
    ctx._envrcpt('<c@d>')
    m = ctx.getpriv()
    val = b'caf\xe9'
    steps = [
        lambda: None,
        lambda: setattr(M.header, 'error_strategy', 'replace'),
        lambda: setattr(M.header, 'error_strategy', 'ignore'),
        lambda: setattr(M, 'header', new_header),
        lambda: setattr(M, 'header_bytes', own_bytes),
        lambda: delattr(M, 'header_bytes'),
        lambda: setattr(m, 'header_bytes', lambda n, v: m.seen.append(
            ('instance header_bytes', _typed((n, v)))) or Milter.CONTINUE),
        lambda: delattr(m, 'header_bytes'),
        lambda: setattr(new_header, 'error_strategy', 'bytes'),
        lambda: delattr(new_header, 'error_strategy'),
    ]
    for i, change in enumerate(steps):
        change()
        assert ctx._header('H%d' % i, val) == Milter.CONTINUE
    return [s for s in m.seen if s[0] not in ('connect', 'hello')]


def test_changes_between_calls_are_seen(monkeypatch):
    fast = _changing_run()
    s = ('str', 'caf\udce9')
    assert fast == [
        ('header', (('str', 'H0'), s)),
        ('header', (('str', 'H1'), ('str', 'caf\ufffd'))),
        ('header', (('str', 'H2'), ('str', 'caf'))),
        ('new header', (('str', 'H3'), s)),
        ('class header_bytes', (('str', 'H4'), ('bytes', b'caf\xe9'))),
        ('new header', (('str', 'H5'), s)),
        ('instance header_bytes', (('str', 'H6'), ('bytes', b'caf\xe9'))),
        ('new header', (('str', 'H7'), s)),
        # 'bytes' puts header in header_bytes' place on the instance, so
        # the strategy no longer matters to this connection once seen.
        ('new header', (('str', 'H8'), ('bytes', b'caf\xe9'))),
        ('new header', (('str', 'H9'), ('bytes', b'caf\xe9'))),
    ]
    monkeypatch.setattr(Milter, '_callbacks',
                        _plain_callbacks(Milter._callbacks))
    assert _changing_run() == fast
