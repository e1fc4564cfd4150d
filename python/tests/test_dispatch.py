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
