"""The milter module calls the Milter object's methods itself when the
registered callbacks are Milter's standard ones (dispatch.c).  Every case
here runs twice, through that shortcut and through the Python functions
alone (the same callbacks without their _milter_std mark), and both runs
must see the same calls, argument types and results."""
import re
import sys
import types

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


def _own(f):
    """A copy of function f: @decode marks the function it is given, and
    each case must mark its own, not Rec's."""
    return types.FunctionType(f.__code__, f.__globals__, f.__name__,
                              f.__defaults__, f.__closure__)


def _strategy(st):
    class M(Rec):
        envfrom = Milter.decode(st)(_own(Rec.envfrom))
        envrcpt = Milter.decode(st)(_own(Rec.envrcpt))
        header = Milter.decode(st)(_own(Rec.header))
    return M


class NoReplyDecoded(Rec):
    header = Milter.noreply(Milter.decode('bytes')(_own(Rec.header)))
    envfrom = Milter.decode('ignore')(Milter.noreply(Rec.envfrom))


class NoReplyAll(Rec):
    connect = Milter.noreply(Rec.connect)
    hello = Milter.noreply(Rec.hello)
    envfrom = Milter.noreply(Rec.envfrom)
    envrcpt = Milter.noreply(Milter.decode('strict')(_own(Rec.envrcpt)))
    data = Milter.noreply(Rec.data)
    header = Milter.noreply(Rec.header)
    eoh = Milter.noreply(Rec.eoh)
    unknown = Milter.noreply(Rec.unknown)


def _answers(name, rc):
    def method(self, *a):
        getattr(Rec, name)(self, *a)
        return rc
    method.__name__ = name
    return method


NR_BITS = 0
for _nr, _no in Milter.OPTIONAL_CALLBACKS.values():
    NR_BITS |= _nr


class NoReplyBreaksRule(Rec):
    """Verdicts other than CONTINUE under @noreply: the rule raises where
    the event's NR bit was negotiated, and lets them through where it was
    not (NoReplyDeclined).  eoh's None is no int: it goes through _then."""
    hello = Milter.noreply(_answers('hello', Milter.TEMPFAIL))
    header = Milter.noreply(_answers('header', Milter.REJECT))
    eoh = Milter.noreply(_answers('eoh', None))


# protocol_mask() is kept on the class that computed it and inherited, as
# pymilter's is: these compute their own (what @noreply asked for) before
# a case computes Rec's, which has no NR bit.
for _k in (NoReplyDecoded, NoReplyAll, NoReplyBreaksRule):
    _k.protocol_mask()


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
         _strategy('a\0b'), NoReplyDecoded, NoReplyAll, NoReplyBreaksRule,
         OwnBytes, InstanceMethods, DropsPriv, Falsy, BadReturn]


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
    fast_err = capsys.readouterr().err
    monkeypatch.setattr(Milter, '_callbacks',
                        _plain_callbacks(Milter._callbacks))
    slow = _run(klass)
    slow_err = capsys.readouterr().err
    assert fast == slow
    # Errors were reported the same way too (the exception policy ran),
    # each with a traceback.
    assert _errors(fast_err) == _errors(slow_err)
    assert fast_err.count('Traceback') == len(_errors(fast_err))


def _errors(err):
    return [line for line in err.splitlines()
            if re.match(r'[A-Za-z]+(Error|Exception): ', line)]


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
    return [s for s in m.seen if 'header' in s[0]]


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


class NoReplyDeclined(NoReplyBreaksRule):
    """Its own negotiate drops the NR bits @noreply asked for: replies are
    owed, and the rule lets every verdict through."""
    def negotiate(self, opts):
        rc = Milter.Base.negotiate(self, opts)
        opts[1] = self._protocol = self._protocol & ~NR_BITS
        return rc


def test_noreply_declined_lets_verdicts_through(monkeypatch, capsys):
    fast = _run(NoReplyDeclined)
    assert fast[0][0] == Milter.TEMPFAIL  # hello's, answered
    assert Milter.NOREPLY not in fast[0]
    monkeypatch.setattr(Milter, '_callbacks',
                        _plain_callbacks(Milter._callbacks))
    assert _run(NoReplyDeclined) == fast
    assert 'RuntimeError' not in capsys.readouterr().err


def test_noreply_rule_raises_on_both_paths(monkeypatch, capsys):
    """With NR agreed, a non-CONTINUE verdict is an error of the milter,
    reported by the exception policy, the same way on both paths."""
    counts = []
    for plain in (False, True):
        if plain:
            monkeypatch.setattr(Milter, '_callbacks',
                                _plain_callbacks(Milter._callbacks))
        rcs, seen = _run(NoReplyBreaksRule)
        err = capsys.readouterr().err
        counts.append(err.count('RuntimeError: hello return code must be '
                                'CONTINUE with @noreply'))
        assert [s[0] for s in seen][:2] == ['connect', 'hello']
        assert rcs[0] == Milter.NOREPLY  # the MTA did not wait for HELO
    assert counts == [1, 1]


def _frames(run):
    """The names of the Python functions run(...) entered."""
    names = []

    def prof(frame, event, arg):
        if event == 'call':
            names.append(frame.f_code.co_name)
    sys.setprofile(prof)
    try:
        run()
    finally:
        sys.setprofile(None)
    return names


def test_noreply_wrapper_body_runs_in_c(monkeypatch):
    """The milter module runs @noreply's wrapper itself: per event the
    method's frame only, not the wrapper's (what costs some 2,500
    instructions a header).  Where the Python path calls the method by
    name (eoh here), the wrapper's frame is there."""
    def rcpt_header():
        ctx._envrcpt('<c@d>')
        ctx._header('Subject', 'x')

    for plain in (False, True):
        if plain:
            monkeypatch.setattr(Milter, '_callbacks',
                                _plain_callbacks(Milter._callbacks))
        Milter.factory = NoReplyAll
        ctx = TestCtx()
        ctx._connect()
        ctx._envfrom('<a@b>')
        names = _frames(rcpt_header)
        assert names.count('header') == names.count('envrcpt') == 1
        # Base.*_bytes are the C side's on both paths.
        assert 'wrapper' not in names
        names = _frames(ctx._eoh)
        assert names.count('eoh') == 1
        # The other events come by method name, through get_method where
        # that makes no bound method (up to 3.12).
        if plain or sys.version_info < (3, 13):
            assert ('wrapper' in names) == plain


def test_noreply_closure_changed_under_it():
    """The wrapper's closure is writable: a replaced function is the one
    called, and an emptied cell is a NameError when the body reads it, as
    in Python, not a crash."""
    class M(NoReplyAll):  # NoReplyAll's protocol_mask, with NR_HDR
        header = Milter.noreply(Rec.header)
    cells = dict(zip(M.header.__code__.co_freevars, M.header.__closure__))
    Milter.factory = M
    ctx = TestCtx()
    ctx._connect()
    ctx._envfrom('<a@b>')
    ctx._envrcpt('<c@d>')
    cells['func'].cell_contents = _answers('header', Milter.CONTINUE)
    assert ctx._header('A', 'b') == Milter.NOREPLY
    del cells['nr'].cell_contents
    ctx._header('C', 'd')  # reported by the exception policy
    # The method ran: the wrapper reads nr after calling it.
    assert [s[0] for s in ctx.getpriv().seen].count('header') == 2
