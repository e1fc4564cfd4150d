"""Milter.utils, Milter.dynip, Milter.pyip6 and Milter.unsign: pymilter
1.0.5's results, including its quirks, which milters' configurations rely
on (an internal_connect list of addresses, patterns and host names)."""
import doctest
import socket
import struct

import pytest

import Milter.dynip
import Milter.pyip6
import Milter.unsign
import Milter.utils as utils

# Host names iniplist resolves in these tests, for both families.
FAKE_DNS = {
    'b.resolvers.level3.net': ['4.2.2.2'],
    'example.com': ['2606:2800:220:1:248:1893:25c8:1946', '93.184.216.34'],
}


@pytest.fixture
def fake_dns(monkeypatch):
    asked = []

    def getaddrinfo(host, port, family=0, *rest):
        asked.append((host, family))
        addrs = FAKE_DNS.get(host.lower())
        if not addrs:
            raise socket.gaierror(socket.EAI_NONAME, 'Name not known')
        fam = {4: socket.AF_INET, 6: socket.AF_INET6}
        infos = [(fam[6 if ':' in a else 4], socket.SOCK_STREAM, 6, '',
                  (a, port)) for a in addrs]
        return [i for i in infos if not family or i[0] == family]
    monkeypatch.setattr(socket, 'getaddrinfo', getaddrinfo)
    return asked


@pytest.mark.parametrize('mod', [utils, Milter.dynip, Milter.pyip6,
                                 Milter.unsign])
def test_doctests(mod):
    failed, tried = doctest.testmod(mod)
    assert tried and not failed, mod.__name__


def test_iniplist_addresses_blocks_patterns():
    nets = ['127.0.0.1', '66.179.26.128/26', '192.168.0.*',
            '2001:610:779::/48']
    assert utils.iniplist('66.179.26.146', nets)
    assert utils.iniplist('127.0.0.1', nets)
    assert utils.iniplist('192.168.0.45', nets)
    assert utils.iniplist('2001:610:779:0:223:6cff:fe9a:9cf3', nets)
    assert not utils.iniplist('66.179.26.64', nets)
    assert not utils.iniplist('2001:610:778::1', nets)
    assert utils.iniplist('10.9.8.7', ['0.0.0.0/0'])
    assert utils.iniplist('::1', ['::/0'])


def test_iniplist_keeps_pymilters_limits(fake_dns):
    # Short prefixes are not networks.
    assert not utils.iniplist('10.1.200.3', ['10.1', '10.1/16'])
    # Across families the integers are compared: the low 32 bits of an
    # IPv6 address against an IPv4 block.
    assert utils.iniplist('::ffff:192.168.1.1', ['192.168.0.0/16'])
    assert utils.iniplist('2001:db8::c0a8:101', ['192.168.0.0/16'])
    assert not utils.iniplist('::ffff:10.1.1.1', ['192.168.0.0/16'])
    assert utils.iniplist('::ffff:192.168.1.1', ['::ffff:192.168.1.1'])
    for bad in ('2G01:610:779::1', 'not-an-ip', '300.1.1.1', '1.2.3'):
        with pytest.raises(ValueError) as e:
            utils.iniplist(bad, ['127.0.0.1'])
        assert str(e.value) == 'Invalid ip syntax:' + bad


def test_iniplist_resolves_host_names_per_family(fake_dns):
    assert utils.iniplist('4.2.2.2', ['b.resolvers.Level3.net'])
    assert fake_dns == [('b.resolvers.Level3.net', socket.AF_INET)]
    # The /n of a host name entry applies to each of its addresses.
    assert utils.iniplist('2606:2800:220:1::', ['example.com/40'])
    assert not utils.iniplist('2606:2800:220:1::', ['example.com'])
    assert utils.iniplist('93.184.216.34', ['example.com'])
    assert not utils.iniplist('4.2.2.2', ['nothing.example.com'])


def test_address_integers_and_masks():
    assert utils.addr2bin('1.2.3.4') == 0x01020304
    assert utils.addr2bin('::1') == 1
    assert utils.addr2bin('2001:db8::') == 0x20010db8 << 96
    with pytest.raises(OSError, match='Invalid IP4 address: 1.2.3.400'):
        utils.addr2bin('1.2.3.400')
    with pytest.raises(OSError, match='Invalid IP6 address: 1::2::3'):
        utils.addr2bin('1::2::3')
    assert utils.bin2long6(b'\0' * 15 + b'\1') == 1
    assert utils.MASK == 2 ** 32 - 1 and utils.MASK6 == 2 ** 128 - 1
    assert utils.cidr(0xC0A80117, 24) == 0xC0A80100
    assert utils.cidr(0xC0A80117, 0) == 0
    assert utils.cidr(0xC0A80117, 32) == 0xC0A80117
    assert utils.cidr(utils.MASK6, 64, utils.MASK6) == utils.MASK6 ^ (
        2 ** 64 - 1)
    assert utils.inet_pton(' ::1 ') == b'\0' * 15 + b'\1'
    assert utils.inet_ntop(b'\0' * 15 + b'\1') == '::1'


def test_address_patterns():
    assert utils.ip4re.match('255.255.255.255')
    for bad in ('256.1.1.1', '01.2.3.4', '1.2.3', '1.2.3.4.5'):
        assert not utils.ip4re.match(bad), bad
    for good in ('::', '::1', '1::', '1:2:3:4:5:6:7:8', '::ffff:1.2.3.4',
                 '1:2:3:4:5:6:1.2.3.4', 'FE80::1', '1::2:3:4:5:6:7'):
        assert utils.ip6re.match(good), good
    for bad in ('1:2:3:4:5:6:7:8:9', '1::2::3', ':1', 'g::1', '1:2:3',
                '::1.2.3', '12345::'):
        assert not utils.ip6re.match(bad), bad
    assert utils.dnsre.match('Mail-1.example.com')
    assert not utils.dnsre.match('1mail.example.com')
    assert utils.PAT_IP4 == Milter.pyip6.PAT_IP4


def test_parse_addr():
    cases = {
        '<user@example.com>': ['user', 'example.com'],
        'user@example.com': ['user', 'example.com'],
        '"user@example.com"': ['user@example.com'],
        '"user@bar"@example.com': ['user@bar', 'example.com'],
        'foo': ['foo'],
        '<>': [''],
        '@mx.example.com:user@example.com': ['user', 'example.com'],
        '@user@example.com': ['@user', 'example.com'],
    }
    for addr, want in cases.items():
        assert utils.parse_addr(addr) == want, addr


def test_parseaddr():
    cases = {
        'user@example.com': ('', 'user@example.com'),
        '"Full Name" <foo@example.com>': ('Full Name', 'foo@example.com'),
        'spam@spammer.com <foo@example.com>':
            ('spam@spammer.com', 'foo@example.com'),
        'God@heaven <@hop1.org,@hop2.net:jeff@spec.org>':
            ('God@heaven', 'jeff@spec.org'),
        'Real Name ((comment)) <addr...@example.com>':
            ('Real Name (comment)', 'addr...@example.com'),
    }
    for addr, want in cases.items():
        assert utils.parseaddr(addr) == want, addr


def test_parse_header():
    s = '=?UTF-8?B?TGFzdCBGZXcgQ29sZHBsYXkgQWxidW0gQXJ0d29ya3MgQXZhaWxhYmxlAA?='
    assert utils.parse_header(s) == \
        'Last Few Coldplay Album Artworks Available\x00'
    assert utils.parse_header('=?iso-8859-1?Q?Peter_=D8rum?= <o@d.dk>') == \
        'Peter \xd8rum <o@d.dk>'
    assert utils.parse_header('plain text') == 'plain text'
    # An unknown charset is tried as UTF-8; if that fails, the raw value.
    assert utils.parse_header('=?bogus?q?caf=C3=A9?=') == 'caf\xe9'
    assert utils.parse_header('=?bogus-cs?q?x=E9?=') == '=?bogus-cs?q?x=E9?='
    # A known charset decodes with replacement characters.
    assert utils.parse_header('=?utf-8?q?x=E9?=') == 'x\ufffd'
    assert utils.parse_header(b'bytes \xe9') == 'bytes \udce9'


def test_decode_base64_without_padding():
    assert utils.decode('TWFu') == b'Man'
    assert utils.decode('TWE') == b'Ma'
    assert utils.decode('TQ') == b'M'
    assert utils.decode('') == ''
    assert utils.decode('YQ0KYg', '\n') == b'a\nb'


def test_dynip_names():
    dyn = [('adsl-69-208-201-177.dsl.emhril.ameritech.net', '69.208.201.177'),
           ('c-71-63-151-151.hsd1.mn.comcast.net', '71.63.151.151'),
           ('[1.2.3.4]', '1.2.3.4'),
           ('4.3.2.1.dyn.example.net', '1.2.3.4'),
           ('dsl-001002003004.example.net', '1.2.3.4'),
           ('0102030a.example.net', '1.2.3.10'),
           ('user10.example.net', '1.2.3.10'),
           ('host.adsl.example.net', '1.2.3.10'),
           ('no-reverse-yet.example.net', '1.2.3.10')]
    for host, addr in dyn:
        assert Milter.dynip.is_dynip(host, addr), host
    static = [('post3.fabulousdealz.com', '69.60.99.112'),
              ('mx1.example.com', '1.2.3.4'),
              ('mail.example.com', '2001:db8::1'),
              ('mail.example.com', '')]
    for host, addr in static:
        assert not Milter.dynip.is_dynip(host, addr), host
    assert Milter.dynip.rehmac.pattern == '|'.join(Milter.dynip.hpats)
    assert Milter.dynip.ip3.findall('a1234b') == ['123', '4']


def test_pyip6_text_forms():
    ntop, pton = Milter.pyip6.inet_ntop, Milter.pyip6.inet_pton

    def words(*w):
        return struct.pack('!8H', *w)
    assert ntop(words(0, 0, 0, 0, 0, 0xFFFF, 0x102, 0x304)) == \
        '::FFFF:1.2.3.4'
    assert ntop(words(0, 0, 0, 0, 0, 0, 0, 1)) == '::0.0.0.1'
    assert ntop(words(0, 0, 0, 0x1234, 0x5678, 0, 0x102, 0x304)) == \
        '::1234:5678:0:102:304'
    assert ntop(words(1, 0, 2, 3, 4, 5, 6, 7)) == '1::2:3:4:5:6:7'
    assert ntop(words(1, 2, 3, 4, 5, 6, 7, 8)) == '1:2:3:4:5:6:7:8'
    assert ntop(bytes(16)) == '::'
    assert struct.unpack('!8H', pton('::FFFF:1.2.3.4')) == \
        (0, 0, 0, 0, 0, 65535, 258, 772)
    assert pton('1.2.3.4') == pton('::ffff:1.2.3.4')
    assert pton('1:2:3:4:5:6:7:8') == words(1, 2, 3, 4, 5, 6, 7, 8)
    for bad in ('::1.2.3.4.5', '1::2::3', '1:2:3', 'g::', '1:2:3:4:5:6:7:8:9',
                '10000::'):
        with pytest.raises(ValueError) as e:
            pton(bad)
        assert str(e.value) == bad
    assert Milter.pyip6.RE_IP4.search('::1.2.3.4').start() == 2


def test_unsign_leaves_address():
    a = 'SRS0=8Y3CZ=3U=jsconnor.com=bills@bmsi.com'
    assert Milter.unsign.unsign(a) == a
