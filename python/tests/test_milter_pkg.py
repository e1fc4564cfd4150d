"""The Milter package: decorators and their negotiated flags (observed on
the real engine through TestCtx), Base/Milter behaviour, helpers."""
import io

import milter
import Milter
import pytest
from Milter.testctx import TestCtx

ALL_NO = (milter.P_NOCONNECT | milter.P_NOHELO | milter.P_NOMAIL |
          milter.P_NORCPT | milter.P_NOBODY | milter.P_NOHDRS |
          milter.P_NOEOH | milter.P_NOUNKNOWN | milter.P_NODATA)


def negotiated(klass, opts=None):
    Milter.factory = klass
    ctx = TestCtx()
    if opts is not None:
        ctx._opts = list(opts)
    assert ctx._negotiate() == Milter.CONTINUE
    v, actions, proto = ctx._conn.negotiated()
    assert proto == ctx._protocol
    return ctx, actions, proto


def test_plain_base_skips_everything():
    class M(Milter.Base):
        pass
    _ctx, actions, proto = negotiated(M)
    assert actions == 0x1FF
    assert proto == ALL_NO | milter.P_SKIP


def test_worked_example_from_spec():
    class M(Milter.Base):
        def connect(self, *a): return Milter.CONTINUE
        def hello(self, h): return Milter.CONTINUE
        def envfrom(self, *a): return Milter.CONTINUE
        @Milter.noreply
        def envrcpt(self, *a): return Milter.CONTINUE
        def data(self): return Milter.CONTINUE
        def header(self, n, v): return Milter.CONTINUE
        def eoh(self): return Milter.CONTINUE
        def body(self, b): return Milter.CONTINUE
        def unknown(self, c): return Milter.CONTINUE
        def eom(self): return Milter.CONTINUE
    _ctx, actions, proto = negotiated(M)
    assert (actions, proto) == (0x1FF, 0x8400)


@pytest.mark.parametrize('name', sorted(Milter.OPTIONAL_CALLBACKS))
def test_each_decorator_flag(name):
    nr, no = Milter.OPTIONAL_CALLBACKS[name]
    args = {'connect': 3, 'hello': 1, 'envfrom': 1, 'envrcpt': 1, 'data': 0,
            'unknown': 1, 'eoh': 0, 'body': 1, 'header': 2}[name]

    def plain():
        # A fresh function each time: @nocallback marks the one it is given.
        def f(self, *a):
            return Milter.CONTINUE
        f.__name__ = name
        return f
    Over = type('Over', (Milter.Base,), {name: plain()})
    NoReply = type('NoReply', (Milter.Base,), {name: Milter.noreply(plain())})
    NoCb = type('NoCb', (Milter.Base,), {name: Milter.nocallback(plain())})
    _c, _a, p_over = negotiated(Over)
    _c, _a, p_nr = negotiated(NoReply)
    _c, _a, p_no = negotiated(NoCb)
    assert not p_over & (nr | no)
    assert p_nr & nr and not p_nr & no
    assert p_no & no and not p_no & nr
    assert args >= 0


def test_nocallback_marks_the_function_it_is_given():
    # As pymilter: the mark is set on the original too, so another class
    # using that same function has the step negotiated away as well.
    def data(self):
        return Milter.CONTINUE
    wrapped = Milter.nocallback(data)
    assert data.milter_protocol == Milter.P_NODATA
    assert wrapped.milter_protocol == Milter.P_NODATA
    Plain = type('Plain', (Milter.Base,), {'data': data})
    assert Plain.protocol_mask() & Milter.P_NODATA == 0
    # @noreply leaves the original alone (pymilter marks only its wrapper).
    def eoh(self):
        return Milter.CONTINUE
    Milter.noreply(eoh)
    assert not hasattr(eoh, 'milter_protocol')


def test_decorator_validation():
    def bogus(self):
        return 0
    with pytest.raises(ValueError, match='non-optional method: bogus'):
        Milter.noreply(bogus)
    with pytest.raises(ValueError, match='non-optional method: bogus'):
        Milter.nocallback(bogus)
    with pytest.raises(ValueError, match='limited to 5'):
        Milter.symlist('a', 'b', 'c', 'd', 'e', 'f')
    with pytest.raises(ValueError):
        Milter.symlist('j')(bogus)


def test_noreply_and_nocallback_return_rules():
    class M(Milter.Base):
        @Milter.noreply
        def envfrom(self, *a):
            return Milter.REJECT

        @Milter.nocallback
        def header(self, n, v):
            return Milter.REJECT
    m = M()
    m._setctx(None)
    m._protocol = milter.P_NR_MAIL
    with pytest.raises(RuntimeError, match='envfrom return code must be '
                                           'CONTINUE with @noreply'):
        m.envfrom('<a@b>')
    m._protocol = 0
    assert m.envfrom('<a@b>') == Milter.REJECT
    with pytest.raises(RuntimeError, match='@nocallback'):
        m.header('a', 'b')


def test_noreply_gives_noreply_on_wire():
    class M(Milter.Base):
        @Milter.noreply
        def envfrom(self, *a):
            self.seen = a
            return Milter.CONTINUE
    ctx, _a, proto = negotiated(M)
    assert proto & milter.P_NR_MAIL
    ctx._connect()
    assert ctx._envfrom('<a@b>') == Milter.NOREPLY
    assert ctx.getpriv().seen == ('<a@b>',)


def test_rejected_recipients_and_leading_space():
    @Milter.rejected_recipients
    @Milter.header_leading_space
    class M(Milter.Base):
        def header(self, n, v):
            self.v = v
            return Milter.CONTINUE
    ctx, _a, proto = negotiated(M)
    assert proto & milter.P_RCPT_REJ and proto & milter.P_HDR_LEADSPC
    ctx._connect()
    ctx._envfrom('<a@b>')
    ctx._envrcpt('<c@d>')
    ctx._header('Subject', ' spaced')
    assert ctx.getpriv().v == ' spaced'


def test_symlist_works_on_py3():
    """pymilter's @symlist passed bytes to the C setsymlist and silently
    lost all negotiation on Python 3 (spec 6.7); here it reaches the MTA."""
    class M(Milter.Base):
        @Milter.symlist('{auth_authen}', 'i')
        def envfrom(self, f, *a):
            self.auth = self.getsymval('{auth_authen}')
            self.j = self.getsymval('j')
            return Milter.CONTINUE

        @Milter.symlist('j')
        @Milter.noreply
        def connect(self, *a):
            return Milter.CONTINUE
    ctx, actions, proto = negotiated(M)
    assert ctx._conn.symlist(milter.M_ENVFROM) == b'{auth_authen} i'
    assert ctx._conn.symlist(milter.M_CONNECT) == b'j'
    assert actions & milter.SETSYMLIST
    assert proto & milter.P_NR_CONN        # negotiation was not lost
    assert not proto & milter.P_NOMAIL
    ctx._setsymval('{auth_authen}', 'batman')
    ctx._setsymval('j', 'mx.example')
    ctx._connect()
    ctx._envfrom('<a@b>')
    # The MTA sends only the listed macros at MAIL, and j at CONNECT.
    assert ctx.getpriv().auth == 'batman'
    assert ctx.getpriv().j == 'mx.example'


def test_symlist_found_on_any_kind_of_callback():
    """negotiate reads @symlist's list from the callback as the attribute
    lookup of the callback itself would find it: through a bound method to
    its function (the class's, or another object's method set on the
    instance), on a staticmethod's function and on a callable object."""
    class Other:
        @Milter.symlist('{rcpt_addr}')
        def envrcpt(self, to, *a):
            return Milter.CONTINUE

    class Callable:
        _symlist = ('{mail_addr}',)

        def __call__(self, *a):
            return Milter.CONTINUE

    class M(Milter.Base):
        def __init__(self):
            self.envrcpt = Other().envrcpt
            self.envfrom = Callable()

        @Milter.symlist('j')
        def connect(self, *a):
            return Milter.CONTINUE

        @staticmethod
        @Milter.symlist('i')
        def eom():
            return Milter.CONTINUE

        def hello(self, h):  # no list: the MTA's default stays
            return Milter.CONTINUE
    ctx, _actions, _proto = negotiated(M)
    assert ctx._conn.symlist(milter.M_CONNECT) == b'j'
    assert ctx._conn.symlist(milter.M_ENVRCPT) == b'{rcpt_addr}'
    assert ctx._conn.symlist(milter.M_ENVFROM) == b'{mail_addr}'
    assert ctx._conn.symlist(milter.M_EOM) == b'i'
    assert ctx._conn.symlist(milter.M_HELO) is None


def test_symlist_hides_unlisted_macros():
    class M(Milter.Base):
        @Milter.symlist('{auth_authen}')
        def envfrom(self, f, *a):
            self.user = self.getsymval('{auth_authen}')
            self.auth_type = self.getsymval('{auth_type}')
            return Milter.CONTINUE
    Milter.factory = M
    ctx = TestCtx()
    ctx._setsymval('{auth_authen}', 'batman')
    ctx._setsymval('{auth_type}', 'batcomputer')
    ctx._connect()
    ctx._envfrom('<a@b>')
    assert ctx.getpriv().user == 'batman'
    assert ctx.getpriv().auth_type is None  # the MTA was told not to send it


def test_testctx_macro_names_either_form():
    """TestCtx plays the MTA with libpmcore's rule of macro names: a
    name and its braced form are one macro, in a @symlist, in
    _setsymval and in getsymval."""
    class M(Milter.Base):
        @Milter.symlist('auth_authen', '{i}')
        def envfrom(self, f, *a):
            self.user = self.getsymval('{auth_authen}')
            self.qid = self.getsymval('i')
            self.auth_type = self.getsymval('auth_type')
            return Milter.CONTINUE
    Milter.factory = M
    ctx = TestCtx()
    ctx._setsymval('{auth_authen}', 'batman')
    ctx._setsymval('i', 'QID1')
    ctx._setsymval('{auth_type}', 'batcomputer')
    ctx._connect()
    ctx._envfrom('<a@b>')
    assert (ctx.getpriv().user, ctx.getpriv().qid) == ('batman', 'QID1')
    assert ctx.getpriv().auth_type is None
    assert ctx.getsymval('{i}') == 'QID1'
    assert ctx.getsymval('auth_authen') == 'batman'


@pytest.mark.parametrize('strategy,want', [
    (None, 'caf\udce9'), ('surrogateescape', 'caf\udce9'),
    ('bytes', b'caf\xe9'), ('strict', b'caf\xe9'), ('ignore', 'caf'),
    ('replace', 'caf\ufffd')])
def test_decode_strategies(strategy, want):
    class M(Milter.Base):
        def envfrom(self, f, *a):
            self.f = f
            return Milter.CONTINUE

        def header(self, n, v):
            self.hv = v
            return Milter.CONTINUE
    if strategy:
        M.envfrom = Milter.decode(strategy)(M.__dict__['envfrom'])
        M.header = Milter.decode(strategy)(M.__dict__['header'])
    Milter.factory = M
    ctx = TestCtx()
    ctx._connect()
    ctx._envfrom(b'caf\xe9')
    ctx._envrcpt('<x@y>')
    ctx._header('X', b'caf\xe9')
    m = ctx.getpriv()
    assert m.f == want and m.hv == want


def test_latin1_header_roundtrip():
    class M(Milter.Base):
        def header(self, n, v):
            self.raw = v
            return Milter.CONTINUE

        def eom(self):
            self.addheader('X-Copy', self.raw)
            self.chgheader('X-Chg', 1, self.raw)
            return Milter.CONTINUE
    M.header = Milter.decode('bytes')(M.__dict__['header'])
    Milter.factory = M
    ctx = TestCtx()
    ctx._connect()
    rc = ctx._feedFile(io.BytesIO(b'X-Chg: a\nX-L: \xe9t\xe9\n\nbody\n'))
    assert rc == Milter.CONTINUE
    mods = ctx._result[2]
    assert ('h', 0, b'X-Copy', b'\xe9t\xe9') in mods


def test_from_milter_import_star():
    ns = {}
    exec('from Milter import *', ns)
    assert ns['CONTINUE'] == 0 and 'Base' in ns and 'noreply' in ns
    assert 'factory' not in ns and 'milter' not in ns


def test_base_setreply_percent_rule():
    m = Milter.Base()
    m._setctx(None)
    with pytest.raises(ValueError, match="'%' must be doubled"):
        m.setreply('550', '5.7.1', '100% sure')


def test_base_setreply_wire():
    class M(Milter.Base):
        def envfrom(self, f, *a):
            self.setreply('550', '5.7.1', '100%% sure', 'second')
            return Milter.REJECT
    Milter.factory = M
    ctx = TestCtx()
    ctx._connect()
    assert ctx._envfrom('<a@b>') == Milter.REJECT
    assert ctx._result[1] == b'550-5.7.1 100%% sure\r\n550 5.7.1 second'
    assert ctx._reply == ('550', '5.7.1', '100%% sure', 'second')


@pytest.mark.parametrize('args,wire,reply', [
    (('451', None, 'a', 'b'), b'451-4.0.0 a\r\n451 4.0.0 b',
     ('451', '4.0.0', 'a', 'b')),
    (('550', None, 'no code'), b'550 no code', ('550', None, 'no code')),
    (('550', '5.7.1', ''), b'550 5.7.1', ('550', '5.7.1', '')),
    (('550', None, '5.7 is text'), b'550 5.7 is text',
     ('550', None, '5.7 is text'))])
def test_base_setreply_reads_back(args, wire, reply):
    """TestCtx reads the reply as libpmcore wrote it: X.0.0 in a
    multi-line reply without one, no code where a line has none."""
    class M(Milter.Base):
        def envfrom(self, f, *a):
            self.setreply(*args)
            return Milter.REJECT if args[0][0] == '5' else Milter.TEMPFAIL
    Milter.factory = M
    ctx = TestCtx()
    ctx._connect()
    ctx._envfrom('<a@b>')
    assert (ctx._result[1], ctx._reply) == (wire, reply)


def test_disabled_action():
    class M(Milter.Base):
        def eom(self):
            try:
                self.addheader('X', 'v')
            except Milter.DisabledAction as e:
                self.err = str(e)
            return Milter.CONTINUE
    Milter.factory = M
    ctx = TestCtx()
    ctx._opts = [milter.CHGBODY, 0x1fffff, 0, 0]
    ctx._connect()
    ctx._feedFile(io.BytesIO(b'Subject: x\n\nb\n'))
    assert ctx.getpriv().err == 'ADDHDRS'
    for name, call in (('CHGHDRS', lambda m: m.chgheader('a', 1, 'b')),
                       ('ADDRCPT', lambda m: m.addrcpt('<a>')),
                       ('DELRCPT', lambda m: m.delrcpt('<a>')),
                       ('CHGFROM', lambda m: m.chgfrom('<a>')),
                       ('QUARANTINE', lambda m: m.quarantine('r')),
                       ('SETSYMLIST', lambda m: m.setsymlist(0, 'j'))):
        m = Milter.Base()
        m._setctx(None)
        m._actions = 0
        with pytest.raises(Milter.DisabledAction, match=name):
            call(m)


def test_addrcpt_params_needs_par():
    m = Milter.Base()
    m._setctx(None)
    m._actions = milter.ADDRCPT
    with pytest.raises(Milter.DisabledAction, match='ADDRCPT_PAR'):
        m.addrcpt('<a@b>', 'NOTIFY=NEVER')


def test_negotiate_exception_gives_all_opts():
    class M(Milter.Base):
        def envfrom(self, *a):
            return Milter.CONTINUE

        def negotiate(self, opts):
            raise RuntimeError('x')
    Milter.factory = M
    ctx = TestCtx()
    # The exception leaves negotiate_callback: the C policy refuses the MTA.
    assert ctx._negotiate() == Milter.REJECT

    class N(Milter.Base):
        def envfrom(self, *a):
            return Milter.CONTINUE

        def setsymlist(self, *a):
            raise RuntimeError('x')

        @Milter.symlist('j')
        def connect(self, *a):
            return Milter.CONTINUE
    # Base.negotiate catches its own failure and answers ALL_OPTS.
    ctx, actions, proto = negotiated(N)
    assert (actions, proto) == (0x1FF, milter.P_SKIP)


def test_protocol_mask_cached_and_inherited():
    class A(Milter.Base):
        def envfrom(self, *a):
            return Milter.CONTINUE
    pa = A.protocol_mask()
    assert A._protocol_mask == pa

    class B(A):
        @Milter.nocallback
        def envfrom(self, *a):
            return Milter.CONTINUE
    assert B.protocol_mask() == pa  # pymilter's inheritance (kept)


def test_milter_class_logs(capsys):
    Milter.factory = Milter.Milter
    ctx = TestCtx()
    assert ctx._connect() in (Milter.CONTINUE, Milter.NOREPLY)
    out = capsys.readouterr().out
    assert 'Milter:' in out and 'connect from localhost' in out


def test_helpers():
    assert Milter.dictfromlist(['SIZE=10', 'x', 'body=8BIT']) == \
        {'SIZE': '10', 'BODY': '8BIT'}
    assert Milter.param2dict(['SIZE=10', 'X']) == {'SIZE': '10', 'X': None}
    got = []
    Milter.envcallback(lambda a, *p, **k: got.append((a, p, k)),
                       ['<a>', 'x', 'SIZE=1'])
    assert got == [('<a>', ('x',), {'SIZE': '1'})]
    a, b = Milter.uniqueID(), Milter.uniqueID()
    assert b == a + 1
    assert Milter.decode_mask(milter.ADDHDRS | milter.CHGBODY | 0x4000,
                              ['ADDHDRS', 'CHGBODY']) == \
        ['ADDHDRS', 'CHGBODY', '0x4000']
    assert Milter.__version__ == '1.0.6'


def test_close_callback_breaks_cycle():
    assert Milter.close_callback(type('C', (), {'getpriv':
                                                lambda s: None})()) == 0


def test_test_base_mixin(tmp_path):
    import Milter.test as mt
    try:
        class M(mt.TestBase, Milter.Base):
            def __init__(self):
                mt.TestBase.__init__(self, str(tmp_path / 'log'))

            def eom(self):
                self.addheader('X-T', 'v')
                self.replacebody(b'new\n')
                return Milter.CONTINUE
        m = M()
        assert m.connect() == Milter.CONTINUE
        assert m.feedFile(io.BytesIO(b'Subject: s\n\nold\n')) == \
            Milter.CONTINUE
        assert m._bodyreplaced and m._headerschanged
        assert m._body.getvalue().endswith(b'new\n')
    finally:
        Milter.NOREPLY = milter.NOREPLY  # TestBase rebinds it on import


def test_test_base_each_message_starts_clean(tmp_path):
    # bms.py's own suite feeds several messages to one milter and asserts
    # each one's _bodyreplaced; and its data() is where a delayed reject
    # is returned.  pymilter's TestBase resets per message and calls data().
    import Milter.test as mt
    try:
        class M(mt.TestBase, Milter.Base):
            def __init__(self):
                mt.TestBase.__init__(self, str(tmp_path / 'log'))
                self.calls = []

            def data(self):
                self.calls.append('data')
                if self.reject_at_data:
                    self.setreply('550', '5.7.1', 'delayed')
                    return Milter.REJECT
                return Milter.CONTINUE

            def header(self, name, value):
                self.calls.append('header')
                return Milter.CONTINUE

            def eom(self):
                if self.change:
                    self.addheader('X-T', 'v')
                    self.replacebody(b'new\n')
                return Milter.CONTINUE
        m = M()
        m.reject_at_data = False
        m.change = True
        assert m.connect() == Milter.CONTINUE
        assert m.feedFile(io.BytesIO(b'Subject: 1\n\nold\n')) == \
            Milter.CONTINUE
        assert m.calls == ['data', 'header']
        assert m._bodyreplaced and m._headerschanged
        m.change = False
        m._reply = ('451', None, 'stale')
        assert m.feedFile(io.BytesIO(b'Subject: 2\n\nold\n'),
                          'b@example.com') == Milter.CONTINUE
        assert not m._bodyreplaced and not m._headerschanged
        assert m._reply is None
        assert m._sender == '<b@example.com>'
        assert m._body.getvalue() == b'Subject: 2\n\nold\n'
        m.calls = []
        m.reject_at_data = True
        assert m.feedFile(io.BytesIO(b'Subject: 3\n\nold\n')) == \
            Milter.REJECT
        assert m.calls == ['data']
        assert m._reply == ('550', '5.7.1', 'delayed')
    finally:
        Milter.NOREPLY = milter.NOREPLY  # TestBase rebinds it on import
