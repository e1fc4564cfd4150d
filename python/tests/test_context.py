"""milter.Context methods and the callback path, through the real engine
(milter._TestConn: libpmcore client -> libpmcore session -> binding)."""
import socket

import milter
import pytest


def conn_with(cbs, **kw):
    c = milter._TestConn(cbs, **kw)
    c.negotiate()
    return c


def full_message(cbs, **kw):
    """Negotiate, connect, helo, mail, rcpt, one header, eoh, body, eom."""
    c = conn_with(cbs, **kw)
    c.connect('mx.example', '4', 25, '192.0.2.1')
    c.helo(b'client.example')
    c.mail([b'<a@example.org>', b'SIZE=10'])
    c.rcpt([b'<b@example.net>'])
    c.header(b'Subject', b'hi')
    c.eoh()
    c.body(b'body\r\n')
    return c, c.eom()


def at_eom(fn, **kw):
    return full_message({'eom': lambda ctx: fn(ctx) or 0}, **kw)[1]


# -- argument types (spec 2.2, 2.3) ---------------------------------------

def test_argument_types():
    seen = {}

    def rec(name):
        def f(ctx, *args):
            seen[name] = args
            return 0
        return f
    cbs = dict((n, rec(n)) for n in ('connect', 'helo', 'envfrom', 'envrcpt',
                                     'header', 'eoh', 'body', 'eom', 'data',
                                     'unknown'))
    c = conn_with(cbs)
    c.connect('mx.example', '4', 25, '192.0.2.1')
    c.helo(b'client.example')
    c.unknown(b'XYZZY arg')
    c.mail([b'<a@example.org>', b'SIZE=10', b'BODY=8BITMIME'])
    c.rcpt([b'<b@example.net>', b'NOTIFY=NEVER'])
    c.data()
    c.header(b'Subject', b'hi \xe9')
    c.eoh()
    c.body(b'a\0b\r\n')
    c.eom()
    assert seen['connect'] == ('mx.example', socket.AF_INET,
                               ('192.0.2.1', 25))
    assert seen['helo'] == ('client.example',)
    assert seen['envfrom'] == (b'<a@example.org>', b'SIZE=10',
                               b'BODY=8BITMIME')
    assert seen['envrcpt'] == (b'<b@example.net>', b'NOTIFY=NEVER')
    assert seen['header'] == ('Subject', b'hi \xe9')
    assert type(seen['header'][0]) is str
    assert seen['body'] == (b'a\0b\r\n',)
    assert seen['unknown'] == ('XYZZY arg',)
    assert seen['eoh'] == seen['eom'] == seen['data'] == ()


@pytest.mark.parametrize('fam,addr,want_fam,want', [
    ('4', '192.0.2.1', socket.AF_INET, ('192.0.2.1', 2525)),
    ('6', '2001:DB8::1', socket.AF_INET6, ('2001:db8::1', 2525, 0, 0)),
    ('6', '::ffff:192.0.2.7', socket.AF_INET6,
     ('::ffff:192.0.2.7', 2525, 0, 0)),
    ('L', '/var/run/x.sock', socket.AF_UNIX, '/var/run/x.sock'),
    ('U', None, 0, None),
])
@pytest.mark.parametrize('pers', [0, 1])
def test_hostaddr_forms(fam, addr, want_fam, want, pers):
    seen = []
    c = conn_with({'connect': lambda ctx, h, f, a: seen.append((f, a)) or 0},
                  personality=pers)
    c.connect('host', fam, 2525, addr)
    assert seen == [(want_fam, want)]


def test_non_utf8_never_fails():
    """The one decoding rule: UTF-8 with surrogateescape, for every str."""
    seen = []
    cbs = {'connect': lambda ctx, h, f, a: seen.append(h) or 0,
           'helo': lambda ctx, h: seen.append(h) or 0,
           'header': lambda ctx, n, v: seen.append(n) or 0,
           'unknown': lambda ctx, l: seen.append(l) or 0,
           'eom': lambda ctx: seen.append(ctx.getsymval('{x}')) or 0}
    c = conn_with(cbs)
    c.set_macros(milter.M_EOM, [b'{x}', b'v\xff'])
    assert c.connect(b'h\xffst', '4', 25, '192.0.2.1')[0] == 'c'
    assert c.helo(b'he\xfflo')[0] == 'c'
    assert c.unknown(b'BAD \xfe')[0] == 'c'
    c.mail([b'<a@b>'])
    c.rcpt([b'<c@d>'])
    assert c.header(b'X-N\xe4me', b'v')[0] == 'c'
    c.eoh()
    assert c.eom()[0] == 'c'
    assert seen[0] == 'h\udcffst'
    assert seen[1:] == ['he\udcfflo', 'BAD \udcfe', 'X-N\udce4me',
                        'v\udcff']
    for s, raw in zip(seen[1:], [b'he\xfflo', b'BAD \xfe', b'X-N\xe4me',
                                 b'v\xff']):
        assert s.encode('utf-8', 'surrogateescape') == raw


def test_header_names_repeated_and_many():
    """Header names are shared from a small cache (callbacks.c): whatever
    names come, in whatever order and however often, each callback gets
    its own name, as text and with undecodable bytes kept."""
    seen = []
    c = conn_with({'header': lambda ctx, n, v: seen.append(n) or 0})
    c.connect('h', '4', 25, '1.2.3.4')
    c.mail([b'<a@example.org>'])
    c.rcpt([b'<b@example.net>'])
    names = [b'X-%d' % i for i in range(400)] + [b'Date', b'MIME-Version',
                                                 b'N\xe4me', b'x' * 40,
                                                 b'x' * 41, b'X']
    sent = names + names[::-1] + names[::3] * 2 + [b'Date', b'X-1'] * 50
    for n in sent:
        c.header(n, b'v')
    assert [n.encode('utf-8', 'surrogateescape') for n in seen] == sent
    assert seen[names.index(b'N\xe4me')] == 'N\udce4me'


# -- Context methods ---------------------------------------------------------

def test_addheader_and_insert():
    mods = at_eom(lambda ctx: (ctx.addheader('X-Probe', 'v1'),
                               ctx.addheader('X-Probe-Ins', 'v2', 1),
                               ctx.addheader('X-U', 'h\u00e9llo'),
                               ctx.addheader(b'X-B', b'\xe9t\xe9')))[2]
    assert mods == [('h', 0, b'X-Probe', b'v1'),
                    ('i', 1, b'X-Probe-Ins', b'v2'),
                    ('h', 0, b'X-U', b'h\xc3\xa9llo'),
                    ('h', 0, b'X-B', b'\xe9t\xe9')]


def test_addheader_argument_forms():
    """The usual calls take a short way (context.c); the others must be
    parsed as before: an index that is a bool or another int type, text
    that is not ASCII or carries escaped bytes, and the errors."""
    class Idx:
        def __index__(self):
            return 2

    class Text(str):
        pass
    errs = []

    def f(ctx):
        ctx.addheader('X-A', Text('v'), -1)
        ctx.addheader('X-B', 'v\udcff', True)
        ctx.addheader(Text('X-C'), 'caf\u00e9', Idx())
        for call, exc in ((lambda: ctx.addheader('X', 'v', 2 ** 40),
                           OverflowError),
                          (lambda: ctx.addheader('X', 'v', 1.0), TypeError),
                          (lambda: ctx.addheader('X', 'v', -1, 0), TypeError),
                          (lambda: ctx.addheader('X', 'v', idx=1),
                           TypeError),
                          (lambda: ctx.addheader('X', 3), TypeError)):
            try:
                call()
            except exc as e:
                errs.append(str(e))
        return 0
    mods = at_eom(f)[2]
    assert mods == [('h', 0, b'X-A', b'v'),
                    ('i', 1, b'X-B', b'v\xff'),
                    ('i', 2, b'X-C', b'caf\xc3\xa9')]
    assert len(errs) == 5, errs
    assert 'addheader' in errs[2]


def test_chgheader():
    mods = at_eom(lambda ctx: (ctx.chgheader('Subject', 1, 'new subj'),
                               ctx.chgheader('X-Del', 0, None),
                               ctx.chgheader(b'X-L', 2, b'\xe9')))[2]
    assert mods == [('m', 1, b'Subject', b'new subj'),
                    ('m', 0, b'X-Del', b''),
                    ('m', 2, b'X-L', b'\xe9')]


def test_chgheader_negative_index():
    errs = []

    def f(ctx):
        try:
            ctx.chgheader('X', -1, 'v')
        except milter.error as e:
            errs.append(str(e))
    at_eom(f)
    assert errs == ['cannot change header']


def test_recipients_sender_body_quarantine_progress():
    def f(ctx):
        ctx.addrcpt('<new@x>')
        ctx.addrcpt('<new2@x>', 'NOTIFY=NEVER')
        ctx.delrcpt('<old@x>')
        ctx.chgfrom('<s@x>')
        ctx.chgfrom('<s2@x>', 'SIZE=10')
        ctx.quarantine('because')
        ctx.progress()
        ctx.replacebody(b'new ')
        ctx.replacebody('b\u00f6dy')
        ctx.replacebody(bytearray(b'!'))
    r = at_eom(f)
    assert r[0] == 'c'
    codes = [m[0] for m in r[2]]
    assert ('p', 0, b'', None) in r[2] or 'p' in codes
    mods = [m for m in r[2] if m[0] != 'p']
    assert ('+', 0, b'<new@x>', None) in mods
    assert ('2', 0, b'<new2@x>', b'NOTIFY=NEVER') in mods
    assert ('-', 0, b'<old@x>', None) in mods
    assert ('e', 0, b'<s@x>', None) in mods
    assert ('e', 0, b'<s2@x>', b'SIZE=10') in mods
    assert ('q', 0, b'because', None) in mods
    body = b''.join(m[2] for m in mods if m[0] == 'b')
    assert body == b'new b\xc3\xb6dy!'


@pytest.mark.parametrize('call,msg', [
    (lambda c: c.addheader('X', 'v'), 'cannot add header'),
    (lambda c: c.chgheader('X', 1, 'v'), 'cannot change header'),
    (lambda c: c.addrcpt('<a@b>'), 'cannot add recipient'),
    (lambda c: c.delrcpt('<a@b>'), 'cannot delete recipient'),
    (lambda c: c.replacebody(b'x'), 'cannot replace message body'),
    (lambda c: c.chgfrom('<a@b>'), 'cannot change sender'),
    (lambda c: c.quarantine('r'), 'cannot quarantine message'),
])
def test_eom_only_actions(call, msg):
    errs = []

    def f(ctx, *a):
        try:
            call(ctx)
        except milter.error as e:
            errs.append((str(e), e.status))
        return 0
    c = conn_with({'envfrom': f})
    c.connect('h', '4', 25, '1.2.3.4')
    c.mail([b'<a@b>'])
    assert errs == [(msg, 'WRONG_STAGE')]


def test_action_not_negotiated():
    errs = []

    def f(ctx):
        try:
            ctx.addheader('X', 'v')
        except milter.error as e:
            errs.append((str(e), e.status, e.reason))
        return 0
    at_eom(f, actions=milter.CHGBODY)
    assert errs[0][:2] == ('cannot add header', 'NOT_NEGOTIATED')
    assert errs[0][2]


def test_verdict_follows_each_return(capsys):
    """The same callback answers differently from call to call: each
    answer is its own verdict (callbacks.c remembers the last int object
    per event), an int subclass counts by value, a bad value by the
    exception policy (a 451 reply by default)."""
    class Code(int):
        pass
    answers = [milter.CONTINUE, milter.REJECT, milter.REJECT,
               milter.CONTINUE, milter.TEMPFAIL, 99, milter.CONTINUE,
               Code(milter.REJECT), True, 2 ** 70, milter.CONTINUE]
    it = iter(answers)
    c = conn_with({'envrcpt': lambda ctx, *a: next(it)})
    c.connect('h', '4', 25, '1.2.3.4')
    c.mail([b'<a@example.org>'])
    got = [c.rcpt([b'<r%d@example.net>' % i])[0]
           for i in range(len(answers))]
    assert got == ['c', 'r', 'r', 'c', 't', 'y', 'c', 'r', 'r', 'y', 'c']
    assert capsys.readouterr().err.count('not a milter return code') == 2


def test_argument_type_errors():
    errs = []

    def f(ctx):
        for call in (lambda: ctx.addheader(1, 'v'),
                     lambda: ctx.addheader('X'),
                     lambda: ctx.replacebody(None),
                     lambda: ctx.setreply('550'),
                     lambda: ctx.getsymval(1)):
            try:
                call()
            except TypeError:
                errs.append('TypeError')
    at_eom(f)
    assert errs == ["TypeError"] * 5, errs


def test_setreply_forms():
    def rcpt(lines):
        def f(ctx, *a):
            ctx.setreply(*lines)
            return milter.REJECT if lines[0][0] == '5' else milter.TEMPFAIL
        c = conn_with({'envrcpt': f})
        c.connect('h', '4', 25, '1.2.3.4')
        c.mail([b'<a@b>'])
        return c.rcpt([b'<c@d>'])
    assert rcpt(('550', '5.7.1', 'go away', 'line two'))[1] == \
        b'550-5.7.1 go away\r\n550 5.7.1 line two'
    assert rcpt(('451', None, 'try later'))[1] == b'451 try later'
    assert rcpt(('550', '5.7.1', '100%% sure'))[1] == \
        b'550 5.7.1 100%% sure'
    assert rcpt(('550', '5.7.1'))[0] in ('y', 'r')
    lines = ['l%d' % i for i in range(32)]
    assert rcpt(('550', '5.7.1') + tuple(lines))[1].count(b'\r\n') == 31


def test_setreply_invalid():
    errs = []

    def f(ctx, *a):
        for args in (('250', None, 'x'), ('550', '4.7.1', 'x'),
                     ('550', None, 'a\r\nb'),
                     ('550', None) + ('x',) * 33):
            try:
                ctx.setreply(*args)
            except milter.error as e:
                errs.append((str(e), e.status))
        return milter.REJECT
    c = conn_with({'envrcpt': f})
    c.connect('h', '4', 25, '1.2.3.4')
    c.mail([b'<a@b>'])
    assert c.rcpt([b'<c@d>'])[0] == 'r'
    assert errs == [('cannot set reply', 'REPLY_TEXT')] * 4


def test_getsymval():
    got = []
    c = conn_with({'connect': lambda ctx, *a: got.append(
        (ctx.getsymval('j'), ctx.getsymval('{j}'),
         ctx.getsymval('{daemon_name}'), ctx.getsymval('nosuch'))) or 0})
    c.set_macros(milter.M_CONNECT, [b'j', b'mx.example',
                                    b'{daemon_name}', b'smtpd'])
    c.connect('h', '4', 25, '1.2.3.4')
    assert got == [('mx.example', 'mx.example', 'smtpd', None)]


def test_getsymval_argument_forms():
    """An ASCII str name takes a short way (context.c), other names are
    parsed as before; values of any length come back whole."""
    class Name(str):
        pass
    long_val = b'x' * 63 + b'\xff' + b'y' * 200
    got, errs = [], []

    def connect(ctx, *a):
        got.append((ctx.getsymval(b'{b}'), ctx.getsymval(Name('{n}')),
                    ctx.getsymval('{caf\u00e9}'), ctx.getsymval('{long}'),
                    ctx.getsymval('{63}'), ctx.getsymval('{64}'),
                    ctx.getsymval('{nosuch}')))
        for call, exc in ((lambda: ctx.getsymval(), TypeError),
                          (lambda: ctx.getsymval('j', 'k'), TypeError),
                          (lambda: ctx.getsymval(name='j'), TypeError),
                          (lambda: ctx.getsymval(None), TypeError),
                          (lambda: ctx.getsymval('{\udcff}'),
                           UnicodeEncodeError)):
            try:
                call()
            except exc as e:
                errs.append(str(e))
        return 0
    c = conn_with({'connect': connect})
    c.set_macros(milter.M_CONNECT, [b'{b}', b'bytes name', b'{n}', b'sub',
                                    '{caf\u00e9}'.encode(), b'accent',
                                    b'{long}', long_val,
                                    b'{63}', b'z' * 63, b'{64}', b'z' * 64])
    c.connect('h', '4', 25, '1.2.3.4')
    assert got == [('bytes name', 'sub', 'accent',
                    long_val.decode('utf-8', 'surrogateescape'),
                    'z' * 63, 'z' * 64, None)]
    assert len(errs) == 5, errs


def test_setpriv_getpriv_and_bad_context():
    kept = []
    marker = object()

    def connect(ctx, *a):
        assert ctx.getpriv() is None
        assert ctx.setpriv(marker) is None
        assert ctx.setpriv(marker) is marker
        kept.append(ctx)
        return 0
    c = conn_with({'connect': connect})
    c.connect('h', '4', 25, '1.2.3.4')
    c.quit()
    ctx = kept[0]
    assert ctx.getpriv() is marker       # still works after close
    assert ctx.setpriv(None) is marker
    with pytest.raises(milter.error, match='bad context'):
        ctx.getsymval('j')
    with pytest.raises(milter.error, match='bad context'):
        ctx.addheader('X', 'v')


def test_same_context_whole_connection():
    seen = set()

    def rec(ctx, *a):
        seen.add(id(ctx))
        return 0
    full_message({n: rec for n in ('negotiate', 'connect', 'helo',
                                   'envfrom', 'envrcpt', 'header', 'eoh',
                                   'body', 'eom')})
    assert len(seen) == 1


def test_getdiag_counts():
    new0, del0 = milter.getdiag()
    c, r = full_message({'connect': lambda ctx, *a: 0})
    c.quit()
    del c
    new1, del1 = milter.getdiag()
    assert new1 - new0 == 1 and del1 - del0 == 1


# -- return values and the exception policy ---------------------------------

@pytest.mark.parametrize('rv,code', [(milter.CONTINUE, 'c'),
                                     (milter.REJECT, 'r'),
                                     (milter.TEMPFAIL, 't'),
                                     (milter.ACCEPT, 'a'),
                                     (milter.DISCARD, 'd'),
                                     (True, 'r')])
def test_return_codes(rv, code):
    c = conn_with({'envfrom': lambda ctx, *a: rv})
    c.connect('h', '4', 25, '1.2.3.4')
    assert c.mail([b'<a@b>'])[0] == code


@pytest.mark.parametrize('policy,code,text', [
    (milter.TEMPFAIL, 'y', b'451 4.3.0 pymilter: untrapped exception in '
                           b'pol'),
    (milter.REJECT, 'y', b'554 5.3.0 pymilter: untrapped exception in pol'),
    (milter.CONTINUE, 'c', b''),
    (milter.ACCEPT, 'a', b''),
])
@pytest.mark.parametrize('bad', ['raise', 'str', 'invalid', 'quarantine',
                                 'none'])
def test_exception_policy(policy, code, text, bad, capsys):
    def f(ctx, *a):
        if bad == 'raise':
            raise ValueError('boom')
        return {'str': 'x', 'invalid': 5, 'quarantine': milter.QUARANTINE,
                'none': None}[bad]
    milter.register('pol')
    milter.set_exception_policy(policy)
    c = conn_with({'envfrom': f})
    c.connect('h', '4', 25, '1.2.3.4')
    r = c.mail([b'<a@b>'])
    assert (r[0], r[1]) == (code, text)
    err = capsys.readouterr().err
    if bad == 'raise':
        assert 'ValueError: boom' in err and 'Traceback' in err
    elif bad in ('invalid', 'quarantine'):
        assert 'not a milter return code' in err
    else:
        assert 'The envfrom callback must return int' in err


def test_policy_name_truncated_to_40():
    milter.register('n' * 60)
    c = conn_with({'helo': lambda ctx, h: 1 / 0})
    c.connect('h', '4', 25, '1.2.3.4')
    assert c.helo(b'x')[1].endswith(b'in ' + b'n' * 40)


def test_sys_exit_in_callback_reaches_caller():
    def f(ctx, *a):
        raise SystemExit(3)
    c = conn_with({'envfrom': f})
    c.connect('h', '4', 25, '1.2.3.4')
    with pytest.raises(SystemExit) as ei:
        c.mail([b'<a@b>'])
    assert ei.value.code == 3
    # The session went on: the MTA got the policy reply, not a hang.
    assert c.rcpt([b'<c@d>'])[0] in ('c', '')


def test_abort_close_results_ignored():
    calls = []
    c = conn_with({'abort': lambda ctx: calls.append('abort') or 'junk',
                   'close': lambda ctx: calls.append('close') or 99})
    c.connect('h', '4', 25, '1.2.3.4')
    c.mail([b'<a@b>'])
    c.abort()
    c.mail([b'<a@b>'])
    c.quit()
    assert calls == ['abort', 'abort', 'close'] or \
        calls == ['abort', 'close']


def test_close_once_and_quit_nc_new_context():
    ctxs, closes = [], []
    c = conn_with({'connect': lambda ctx, *a: ctxs.append(ctx) or 0,
                   'close': lambda ctx: closes.append(ctx) or 0})
    c.connect('h', '4', 25, '1.2.3.4')
    c.quit_nc()
    c.connect('h2', '4', 25, '1.2.3.5')
    c.quit()
    assert len(ctxs) == 2 and ctxs[0] is not ctxs[1]
    assert closes == ctxs


def test_noreply_verdict():
    seen = []
    c = milter._TestConn({
        'negotiate': lambda ctx, o: (o.__setitem__(1, milter.P_NR_MAIL),
                                     0)[1],
        'envfrom': lambda ctx, *a: seen.append(a) or milter.NOREPLY})
    c.negotiate()
    assert c.negotiated()[2] & milter.P_NR_MAIL
    c.connect('h', '4', 25, '1.2.3.4')
    assert c.mail([b'<a@b>'])[0] == ''
    assert seen


def test_skip_from_body():
    chunks = []
    c = conn_with({'body': lambda ctx, b: chunks.append(b) or milter.SKIP})
    c.connect('h', '4', 25, '1.2.3.4')
    c.mail([b'<a@b>'])
    c.rcpt([b'<c@d>'])
    c.eoh()
    r = c.body(b'x' * 200000)
    assert r[0] == 's' and len(chunks) == 1


# -- negotiation (spec 2.6) -------------------------------------------------

def test_negotiate_opts_offer():
    seen = []
    c = milter._TestConn({'negotiate': lambda ctx, o: seen.append(list(o))
                          or milter.ALL_OPTS})
    c.negotiate()
    assert seen == [[0x1FF, 0x1FFFFF, 0, 0]]
    assert c.negotiated() == (6, 0x1FF, milter.P_SKIP)


def test_negotiate_nr_bits_fakeable():
    seen = []
    c = milter._TestConn({'negotiate': lambda ctx, o: seen.append(list(o))
                          or milter.ALL_OPTS}, protocol=0x3F)
    c.negotiate()
    assert seen[0][1] == 0x3F | 0x80 | 0xFF000


def test_no_negotiate_callback_all_opts():
    new0 = milter.getdiag()[0]
    c = milter._TestConn({'connect': lambda ctx, *a: 0})
    c.negotiate()
    assert c.negotiated() == (6, 0x1FF, milter.P_SKIP)
    assert milter.getdiag()[0] == new0  # no context made for negotiate


def test_negotiate_continue_uses_opts():
    def neg(ctx, opts):
        opts[0] = milter.ADDHDRS
        opts[1] = milter.P_NOHELO | milter.P_NR_MAIL
        return milter.CONTINUE
    c = milter._TestConn({'negotiate': neg})
    c.negotiate()
    assert c.negotiated()[1:] == (milter.ADDHDRS,
                                  milter.P_NOHELO | milter.P_NR_MAIL)


def test_negotiate_short_list_keeps_offer():
    def neg(ctx, opts):
        del opts[1:]
        opts[0] = milter.ADDHDRS
        return milter.CONTINUE
    c = milter._TestConn({'negotiate': neg})
    c.negotiate()
    assert c.negotiated()[1] == milter.ADDHDRS


@pytest.mark.parametrize('rv', [milter.REJECT, milter.TEMPFAIL,
                                milter.ACCEPT, 'x'])
def test_negotiate_refusal(rv, capsys):
    closes = []
    c = milter._TestConn({'negotiate': lambda ctx, o: rv,
                          'close': lambda ctx: closes.append(1) or 0})
    with pytest.raises(milter.error):
        c.negotiate()
    del c
    assert closes == [1]


def test_negotiate_exception_refuses(capsys):
    c = milter._TestConn({'negotiate': lambda ctx, o: 1 / 0})
    with pytest.raises(milter.error):
        c.negotiate()
    assert 'ZeroDivisionError' in capsys.readouterr().err


def test_setsymlist_in_negotiate():
    def neg(ctx, opts):
        ctx.setsymlist(milter.M_CONNECT, 'j {daemon_name}')
        ctx.setsymlist(milter.M_ENVFROM, b'{auth_authen}')
        with pytest.raises(milter.error, match='cannot set macro list'):
            ctx.setsymlist(milter.M_CONNECT, 'j')
        with pytest.raises(milter.error, match='cannot set macro list'):
            ctx.setsymlist(7, 'j')
        return milter.ALL_OPTS
    c = milter._TestConn({'negotiate': neg})
    c.negotiate()
    assert c.symlist(milter.M_CONNECT) == b'j {daemon_name}'
    assert c.symlist(milter.M_ENVFROM) == b'{auth_authen}'
    assert c.negotiated()[1] & milter.SETSYMLIST


def test_setsymlist_outside_negotiate_raises():
    errs = []

    def f(ctx, *a):
        try:
            ctx.setsymlist(milter.M_CONNECT, 'j')
        except milter.error as e:
            errs.append(e.status)
        return 0
    c = conn_with({'connect': f})
    c.connect('h', '4', 25, '1.2.3.4')
    assert errs == ['WRONG_STAGE']


def test_set_flags_ignored_by_negotiation():
    milter.set_flags(milter.ADDHDRS)
    c = milter._TestConn({'connect': lambda ctx, *a: 0})
    c.negotiate()
    assert c.negotiated()[1] == 0x1FF
    milter.set_flags(milter.CURR_ACTS)


def test_callbacks_replaced_while_running():
    order = []
    milter.set_envfrom_callback(lambda ctx, *a: order.append(1) or 0)
    c = milter._TestConn()
    c.negotiate()
    c.connect('h', '4', 25, '1.2.3.4')
    c.mail([b'<a@b>'])
    milter.set_envfrom_callback(lambda ctx, *a: order.append(2) or 0)
    c.mail([b'<a@b>'])
    assert order == [1, 2]


def test_context_outside_callback_refused():
    kept = []
    c = conn_with({'connect': lambda ctx, *a: kept.append(ctx) or 0})
    c.connect('h', '4', 25, '1.2.3.4')
    with pytest.raises(milter.error, match='outside of its callbacks'):
        kept[0].getsymval('j')


def test_reentry_refused():
    errs = []
    holder = []

    def f(ctx, *a):
        try:
            holder[0].helo(b'x')
        except RuntimeError as e:
            errs.append(str(e))
        return 0
    c = conn_with({'connect': f})
    holder.append(c)
    c.connect('h', '4', 25, '1.2.3.4')
    holder.clear()
    assert errs and 'inside one of its callbacks' in errs[0]


def test_negotiate_exception_under_continue_policy_uses_opts(capsys):
    def neg(ctx, opts):
        opts[0] = milter.ADDHDRS
        opts[1] = 0
        raise ValueError('after editing opts')
    milter.set_exception_policy(milter.CONTINUE)
    c = milter._TestConn({'negotiate': neg})
    c.negotiate()
    assert c.negotiated()[1:] == (milter.ADDHDRS, 0)
    assert 'after editing opts' in capsys.readouterr().err
