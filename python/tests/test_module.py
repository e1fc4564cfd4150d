"""The `milter` module: constants, milter.error and every function."""
import milter
import pytest

CONSTANTS = {
    'CONTINUE': 0, 'REJECT': 1, 'DISCARD': 2, 'ACCEPT': 3, 'TEMPFAIL': 4,
    'NOREPLY': 7, 'SKIP': 8, 'ALL_OPTS': 10, 'SUCCESS': 0, 'FAILURE': -1,
    'VERSION': 0x01000001, 'ADDHDRS': 0x1, 'CHGBODY': 0x2, 'MODBODY': 0x2,
    'ADDRCPT': 0x4, 'DELRCPT': 0x8, 'CHGHDRS': 0x10, 'QUARANTINE': 0x20,
    'CHGFROM': 0x40, 'ADDRCPT_PAR': 0x80, 'SETSYMLIST': 0x100,
    'V1_ACTS': 0xF, 'V2_ACTS': 0x3F, 'CURR_ACTS': 0x1FF,
    'M_CONNECT': 0, 'M_HELO': 1, 'M_ENVFROM': 2, 'M_ENVRCPT': 3,
    'M_DATA': 4, 'M_EOM': 5, 'M_EOH': 6,
    'P_NOCONNECT': 0x1, 'P_NOHELO': 0x2, 'P_NOMAIL': 0x4, 'P_NORCPT': 0x8,
    'P_NOBODY': 0x10, 'P_NOHDRS': 0x20, 'P_NOEOH': 0x40,
    'P_NOUNKNOWN': 0x100, 'P_NODATA': 0x200, 'P_NR_HDR': 0x80,
    'P_NR_CONN': 0x1000, 'P_NR_HELO': 0x2000, 'P_NR_MAIL': 0x4000,
    'P_NR_RCPT': 0x8000, 'P_NR_DATA': 0x10000, 'P_NR_UNKN': 0x20000,
    'P_NR_EOH': 0x40000, 'P_NR_BODY': 0x80000, 'P_SKIP': 0x400,
    'P_RCPT_REJ': 0x800, 'P_HDR_LEADSPC': 0x100000,
}

FUNCTIONS = [
    'set_flags', 'set_connect_callback', 'set_helo_callback',
    'set_envfrom_callback', 'set_envrcpt_callback', 'set_header_callback',
    'set_eoh_callback', 'set_body_callback', 'set_eom_callback',
    'set_abort_callback', 'set_close_callback', 'set_exception_policy',
    'register', 'opensocket', 'main', 'setdbg', 'setbacklog', 'settimeout',
    'setconn', 'stop', 'getdiag', 'getversion',
]


def test_52_constants():
    assert len(CONSTANTS) == 52
    for name, value in CONSTANTS.items():
        v = getattr(milter, name)
        assert type(v) is int and v == value, name
    public_ints = [n for n in dir(milter) if not n.startswith('_')
                   and isinstance(getattr(milter, n), int)]
    assert sorted(public_ints) == sorted(CONSTANTS)


def test_not_exported():
    for n in ('SMFIF_NONE', 'SMFIP_NOHREPL', 'SMFI_V1_PROT', 'Context'):
        assert not hasattr(milter, n)


def test_functions_exact():
    public = [n for n in dir(milter) if not n.startswith('_')
              and callable(getattr(milter, n)) and n != 'error']
    assert sorted(public) == sorted(FUNCTIONS)
    assert len(FUNCTIONS) == 22


def test_error():
    assert issubclass(milter.error, Exception)
    assert milter.error.__bases__ == (Exception,)
    assert milter.error.__module__ == 'milter'
    assert repr(milter.error) == "<class 'milter.error'>"


def test_docstring():
    assert milter.__doc__.startswith("This module interfaces with Sendmail's"
                                     " libmilter functionality")


@pytest.mark.parametrize('slot', ['connect', 'helo', 'envfrom', 'envrcpt',
                                  'header', 'eoh', 'body', 'eom', 'abort',
                                  'close'])
def test_setters_return_previous(slot):
    setter = getattr(milter, 'set_%s_callback' % slot)

    def f1(*a):
        return 0

    def f2(*a):
        return 0
    assert setter(f1) is None
    assert setter(f2) is f1
    assert setter(None) is f2
    assert setter(None) is None
    with pytest.raises(TypeError, match='callback parameter must be '
                                        'callable'):
        setter(42)
    with pytest.raises(TypeError):
        setter()


def test_no_unknown_data_negotiate_setters():
    for n in ('set_unknown_callback', 'set_data_callback',
              'set_negotiate_callback'):
        assert not hasattr(milter, n)


def test_register_keywords():
    milter.register('x', unknown=lambda c, l: 0, data=lambda c: 0,
                    negotiate=lambda c, o: 0)
    milter.register('x', None, None, None)
    milter.register(name='y')
    with pytest.raises(TypeError, match='negotiate parameter must be'):
        milter.register('x', negotiate=1)
    with pytest.raises(TypeError, match='unknown parameter must be'):
        milter.register('x', unknown=1)
    with pytest.raises(TypeError, match='data parameter must be'):
        milter.register('x', data=1)
    with pytest.raises(TypeError):
        milter.register('x', nosuch=None)
    with pytest.raises(TypeError):
        milter.register(b'bytes-name')


def test_register_positional_order_and_name_copy():
    seen = []
    name = ''.join(['dyn', 'amic'])
    milter.register(name, lambda c, l: seen.append('unknown') or 0,
                    lambda c: seen.append('data') or 0)
    del name  # the binding copied it (pymilter kept a dangling pointer)

    def boom(ctx):
        raise ValueError('x')
    milter.set_eom_callback(boom)
    conn = milter._TestConn()
    conn.negotiate()
    conn.connect('h', '4', 25, '1.2.3.4')
    conn.unknown(b'HELP')
    conn.mail([b'<a@b>'])
    conn.rcpt([b'<c@d>'])
    conn.data()
    conn.eoh()
    r = conn.eom()
    assert seen == ['unknown', 'data']
    assert r[0] == 'y'
    assert r[1] == b'451 4.3.0 pymilter: untrapped exception in dynamic'


def test_set_flags():
    milter.set_flags(milter.ADDHDRS)
    milter.set_flags(milter.CURR_ACTS)
    with pytest.raises(TypeError):
        milter.set_flags('x')
    with pytest.raises(OverflowError):
        milter.set_flags(1 << 40)


def test_set_exception_policy():
    for p in (milter.CONTINUE, milter.REJECT, milter.ACCEPT,
              milter.TEMPFAIL):
        milter.set_exception_policy(p)
    for p in (milter.DISCARD, milter.SKIP, milter.NOREPLY, 99):
        with pytest.raises(milter.error, match='invalid exception policy'):
            milter.set_exception_policy(p)


def test_small_settings():
    milter.setdbg(1)
    milter.setdbg(0)
    milter.settimeout(-1)
    milter.settimeout(7210)
    milter.setbacklog(5)
    for n in (0, -1):
        with pytest.raises(milter.error, match='cannot set backlog'):
            milter.setbacklog(n)
    with pytest.raises(milter.error, match='cannot set connection'):
        milter.setconn('')
    with pytest.raises(TypeError):
        milter.setconn(b'inet:1234')
    milter.setconn('inet:0@127.0.0.1')


def test_getdiag_getversion():
    d = milter.getdiag()
    assert isinstance(d, tuple) and len(d) == 2
    assert all(isinstance(x, int) for x in d)
    assert milter.getversion() >= (1, 0, 1)


def test_stop_when_not_running():
    assert milter.stop() is None


def test_opensocket_bad_spec():
    milter.setconn('unix:/nonexistent-dir/x.sock')
    with pytest.raises(milter.error, match='cannot opensocket'):
        milter.opensocket(True)
    with pytest.raises(TypeError):
        milter.opensocket('x')


def test_main_without_listener():
    milter.setconn('unix:/nonexistent-dir/x.sock')
    with pytest.raises(milter.error, match='cannot run main'):
        milter.main()


def test_context_type_hidden():
    seen = []
    milter.set_connect_callback(lambda ctx, *a: seen.append(ctx) or 0)
    conn = milter._TestConn()
    conn.negotiate()
    conn.connect('h', '4', 25, '1.2.3.4')
    ctx = seen[0]
    assert type(ctx).__name__ == 'Context'
    assert type(ctx).__module__ == 'milter'
    with pytest.raises(TypeError):
        type(ctx)()
    names = sorted(n for n in dir(ctx) if not n.startswith('_'))
    assert names == ['addheader', 'addrcpt', 'chgfrom', 'chgheader',
                     'delrcpt', 'getpriv', 'getsymval', 'progress',
                     'quarantine', 'replacebody', 'setpriv', 'setreply',
                     'setsymlist']
    with pytest.raises(TypeError):
        class Sub(type(ctx)):
            pass


def test_main_arguments():
    with pytest.raises(TypeError):
        milter.main(4)              # pymilter's main() has no positionals
    with pytest.raises(TypeError):
        milter.main(threads='x')


@pytest.mark.parametrize('spec', ['inet:0@127.0.0.1', 'inet:0@[127.0.0.1]',
                                  'inet6:0@[::1]', 'inet:0'])
def test_opensocket_specs(spec):
    """pymilter's spec forms, including libmilter's bracketed IPv4; the
    socket is handed to the next main(), which stop() ends at once."""
    import threading
    milter.setconn(spec)
    milter.opensocket(True)
    t = threading.Timer(0.2, milter.stop)
    t.start()
    assert milter.main() is None
    t.join()


def test_opensocket_unix_forms(tmp_path):
    import threading
    for spec in ('unix:%s' % (tmp_path / 'a.sock'),
                 'local:%s' % (tmp_path / 'b.sock'),
                 str(tmp_path / 'c.sock')):
        milter.setconn(spec)
        milter.opensocket(True)
        t = threading.Timer(0.2, milter.stop)
        t.start()
        assert milter.main() is None
        t.join()
