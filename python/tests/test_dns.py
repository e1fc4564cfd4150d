"""Milter.dns on dnspython (the [dns] extra), against a DNS server on
127.0.0.1 started by the test: pydns's result shapes, Session's cache and
what it refuses to cache, CNAME chains, errors, and the ImportError that
names the extra."""
import subprocess
import sys

import pytest

import Milter.dns as mdns
from fakedns import FakeDNS

ZONE = {
    ('example.com', 'A'): ['192.0.2.1'],
    ('example.com', 'AAAA'): ['2001:db8::1'],
    ('example.com', 'MX'): ['20 mx2.example.com.', '10 mx1.example.com.'],
    ('example.com', 'TXT'): ['"v=spf1 " "-all"', '"second"'],
    ('example.com', 'SPF'): ['"v=spf1 -all"'],
    ('example.com', 'NS'): ['ns1.example.com.'],
    ('bad.example.com', 'TXT'): ['"caf\\195\\169"'],
    ('www.example.com', 'CNAME'): ['example.com.'],
    ('alias.example.com', 'CNAME'): ['target.example.net.'],
    ('target.example.net', 'A'): ['198.51.100.7'],
    ('loop1.example.com', 'CNAME'): ['loop2.example.com.'],
    ('loop2.example.com', 'CNAME'): ['loop1.example.com.'],
    ('1.2.0.192.in-addr.arpa', 'PTR'): ['host.example.com.'],
    ('empty.example.com', 'A'): [],
}
# c0 -> c1 -> ... -> c11 -> a record: longer than MAX_CNAME.
for i in range(12):
    ZONE[('c%d.example.com' % i, 'CNAME')] = ['c%d.example.com.' % (i + 1)]
ZONE[('c12.example.com', 'A')] = ['192.0.2.12']
del ZONE[('empty.example.com', 'A')]
ZONE[('empty.example.com', 'TXT')] = ['"only txt"']


@pytest.fixture
def server():
    srv = FakeDNS(ZONE, follow={'www.example.com'})
    mdns.set_resolver(srv.resolver())
    yield srv
    mdns.set_resolver(None)
    srv.close()


def test_lookup_shapes(server):
    L = mdns.DNSLookup
    assert L('example.com', 'A') == [(('example.com', 'A'), '192.0.2.1')]
    assert L('example.com', 'AAAA') == [
        (('example.com', 'AAAA'), b' \x01\r\xb8' + b'\0' * 11 + b'\x01')]
    assert sorted(L('example.com', 'MX')) == [
        (('example.com', 'MX'), (10, 'mx1.example.com')),
        (('example.com', 'MX'), (20, 'mx2.example.com'))]
    assert sorted(L('example.com', 'TXT')) == [
        (('example.com', 'TXT'), [b'second']),
        (('example.com', 'TXT'), [b'v=spf1 ', b'-all'])]
    assert L('example.com', 'SPF') == [(('example.com', 'SPF'),
                                        [b'v=spf1 -all'])]
    assert L('example.com', 'NS') == [(('example.com', 'NS'),
                                       'ns1.example.com')]
    assert L('1.2.0.192.in-addr.arpa', 'PTR') == [
        (('1.2.0.192.in-addr.arpa', 'PTR'), 'host.example.com')]
    # The CNAME that led to the records is part of the answer.
    assert L('www.example.com', 'A') == [
        (('www.example.com', 'CNAME'), 'example.com'),
        (('example.com', 'A'), '192.0.2.1')]
    assert L('nx.example.com', 'A') == []
    assert L('empty.example.com', 'A') == []


def test_session_caches_answers(server):
    s = mdns.Session()
    assert sorted(s.dns('Example.COM.', 'MX')) == [
        (10, 'mx1.example.com'), (20, 'mx2.example.com')]
    assert s.dns('example.com', 'MX') and server.queries == [
        ('example.com', 'MX')]
    assert s.dns('www.example.com', 'A') == ['192.0.2.1']
    # The target's A came with the CNAME's answer: no new query.
    assert s.dns('example.com', 'A') == ['192.0.2.1']
    assert s.dns('www.example.com', 'A') == ['192.0.2.1']
    assert server.queries == [('example.com', 'MX'), ('www.example.com', 'A')]
    assert s.dns('nx.example.com', 'A') == []


def test_session_does_not_cache_unsafe_records(monkeypatch):
    # A PTR answer carrying an A record (which the client's DNS controls)
    # must not answer a later A question; MX answers may carry A records.
    answers = {
        ('1.2.0.192.in-addr.arpa', 'PTR'): [
            (('1.2.0.192.in-addr.arpa', 'PTR'), 'mail.example.com'),
            (('mail.example.com', 'A'), '203.0.113.66')],
        ('example.com', 'MX'): [
            (('example.com', 'MX'), (10, 'mx.example.com')),
            (('mx.example.com', 'A'), '192.0.2.25')],
    }
    monkeypatch.setattr(mdns, 'DNSLookup', lambda n, t: answers[(n, t)])
    s = mdns.Session()
    assert s.dns('1.2.0.192.in-addr.arpa', 'PTR') == ['mail.example.com']
    assert ('mail.example.com', 'A') not in s.cache
    assert s.dns('example.com', 'MX') == [(10, 'mx.example.com')]
    assert s.cache[('mx.example.com', 'A')] == ['192.0.2.25']


def test_session_follows_cnames(server):
    s = mdns.Session()
    assert s.dns('alias.example.com', 'A') == ['198.51.100.7']
    assert server.queries == [('alias.example.com', 'A'),
                              ('target.example.net', 'A')]
    assert s.cache[('alias.example.com', 'A')] == ['198.51.100.7']
    with pytest.raises(mdns.DNSError, match='CNAME loop'):
        mdns.Session().dns('loop1.example.com', 'A')
    with pytest.raises(mdns.DNSError, match='exceeds 10'):
        mdns.Session().dns('c0.example.com', 'A')
    assert mdns.MAX_CNAME == 10


def test_invalid_names_are_not_asked(server):
    s = mdns.Session()
    for name in ('a..example.com', 'x' * 64 + '.example.com', ''):
        assert s.dns(name, 'A') == []
    assert server.queries == []


def test_dns_txt(server):
    s = mdns.Session()
    assert sorted(s.dns_txt('example.com')) == ['second', 'v=spf1 -all']
    assert s.dns_txt('') == []
    with pytest.raises(mdns.DNSError, match='Non-ascii'):
        s.dns_txt('bad.example.com')
    assert s.dns_txt('bad.example.com', 'utf-8') == ['caf\xe9']


def test_timeout_is_dnserror():
    srv = FakeDNS(ZONE, silent=True)
    mdns.set_resolver(srv.resolver(lifetime=0.3))
    try:
        with pytest.raises(mdns.DNSError):
            mdns.Session().dns('example.com', 'A')
        assert srv.queries[:1] == [('example.com', 'A')]
    finally:
        mdns.set_resolver(None)
        srv.close()
    assert issubclass(mdns.DNSError, Exception)


def test_without_dnspython_the_import_names_the_extra():
    code = ('import sys; sys.modules["dns"] = None\n'
            'try:\n    import Milter.dns\n'
            'except ImportError as e:\n    print(e)\n')
    out = subprocess.run([sys.executable, '-c', code], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True)
    assert 'pip install pmcore-milter[dns]' in out.stdout
