"""Milter.utils: address, header and IP list helpers (pymilter's API).

Written afresh from pymilter 1.0.5's documentation and doctests; the
results are pymilter's, including its quirks (see python/CHANGES for the
two deliberate differences: bytes accepted by parse_header, and no
replacement of email.base64mime.decode at import).
"""
import binascii
import email.errors
import email.header
import email.utils
import re
import socket
import struct
from fnmatch import fnmatchcase

__all__ = ['MASK', 'MASK6', 'PAT_IP4', 'addr2bin', 'bin2long6', 'cidr',
           'decode', 'dnsre', 'inet_ntop', 'inet_pton', 'iniplist', 'ip4re',
           'ip6re', 'parse_addr', 'parse_header', 'parseaddr']

# What iniplist takes for a host name to resolve.
dnsre = re.compile(r'^[a-z][-a-z\d.]+$', re.IGNORECASE)

# A dotted quad, each part 0-255 written without leading zeros.
_OCTET = r'(?:\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5])'
PAT_IP4 = r'\.'.join([_OCTET] * 4)
ip4re = re.compile(PAT_IP4 + '$')


def _ip6_pattern():
    """RFC 3986's IPv6address: eight 16-bit groups, the last two of which
    may be a dotted quad, with at most one '::' standing for one or more
    zero groups."""
    h16 = '[0-9a-f]{1,4}'
    ls32 = '(?:%s:%s|%s)' % (h16, h16, PAT_IP4)
    forms = ['(?:%s:){6}%s' % (h16, ls32), '::(?:%s:){5}%s' % (h16, ls32)]
    # With up to k + 1 groups before the '::', what may follow it.
    tails = ['(?:%s:){%d}%s' % (h16, n, ls32) for n in (4, 3, 2, 1, 0)]
    tails += [h16, '']
    for k, tail in enumerate(tails):
        forms.append('(?:(?:%s:){0,%d}%s)?::%s' % (h16, k, h16, tail))
    return '|'.join(f + '$' for f in forms)


ip6re = re.compile(_ip6_pattern(), re.IGNORECASE)

MASK = 0xFFFFFFFF
MASK6 = (1 << 128) - 1


def cidr(i, n, mask=MASK):
    """i with all but its n leading bits cleared (of 32, or of 128 with
    mask=MASK6): the network part of an address as an integer.

    >>> hex(cidr(0xC0A80117, 16))
    '0xc0a80000'
    """
    return i & mask & ~(mask >> n)


def bin2long6(s):
    """The integer of a 16-byte packed IPv6 address."""
    hi, lo = struct.unpack('!QQ', s)
    return hi << 64 | lo


def inet_ntop(s):
    """Text form of a 16-byte packed IPv6 address."""
    return socket.inet_ntop(socket.AF_INET6, s)


def inet_pton(s):
    """16-byte packed form of an IPv6 address in text (surrounding white
    space ignored)."""
    return socket.inet_pton(socket.AF_INET6, s.strip())


def addr2bin(s):
    """The integer of an IPv4 (dotted quad) or IPv6 address in text;
    socket.error (OSError) for anything else.

    >>> addr2bin('1.2.3.4') == 0x01020304, addr2bin('::1')
    (True, 1)
    """
    if ':' in s:
        try:
            return bin2long6(inet_pton(s))
        except (OSError, ValueError):
            raise socket.error('Invalid IP6 address: ' + s)
    try:
        return struct.unpack('!L', socket.inet_aton(s))[0]
    except (OSError, ValueError):
        raise socket.error('Invalid IP4 address: ' + s)


def _inlist(fam, ipnum, ipaddr, pat):
    """Whether the address matches one entry of an iniplist list."""
    parts = pat.split('/', 1)
    base = parts[0]
    if ip4re.match(base) or ip6re.match(base):
        v6 = not ip4re.match(base)
        bits = int(parts[1]) if len(parts) > 1 else (128 if v6 else 32)
        mask = MASK6 if v6 else MASK
        net = bin2long6(inet_pton(base)) if v6 else addr2bin(base)
        return cidr(net, bits, mask) == cidr(ipnum, bits, mask)
    if dnsre.match(base):
        suffix = ''.join('/' + p for p in parts[1:])
        try:
            infos = socket.getaddrinfo(base, 25, fam)
        except socket.gaierror:
            return False
        return iniplist(ipaddr, [info[4][0] + suffix for info in infos])
    return fnmatchcase(ipaddr, pat)


def iniplist(ipaddr, iplist):
    """Whether ipaddr (IPv4 or IPv6 text) is in iplist, whose entries are
    addresses, CIDR blocks (a.b.c.d/n, x::y/n), host names (resolved, for
    the address family of ipaddr, optionally with /n) or shell patterns
    matched against the address text (192.168.0.*).  Entries of the other
    family compare as integers, as in pymilter: an IPv6 address matches an
    IPv4 block by its low 32 bits (so ::ffff:a.b.c.d matches a.b.c.d's
    networks).  ValueError if ipaddr is not an address.

    >>> iniplist('66.179.26.146', ['127.0.0.1', '66.179.26.128/26'])
    True
    >>> iniplist('192.168.0.45', ['192.168.0.*'])
    True
    >>> iniplist('2001:610:779:0:223:6cff:fe9a:9cf3', ['2001:610:779::/48'])
    True
    >>> iniplist('2G01::1', ['127.0.0.1'])
    Traceback (most recent call last):
      ...
    ValueError: Invalid ip syntax:2G01::1
    """
    if ip4re.match(ipaddr):
        fam, ipnum = socket.AF_INET, addr2bin(ipaddr)
    elif ip6re.match(ipaddr):
        fam, ipnum = socket.AF_INET6, bin2long6(inet_pton(ipaddr))
    else:
        raise ValueError('Invalid ip syntax:' + ipaddr)
    return any(_inlist(fam, ipnum, ipaddr, pat) for pat in iplist)


def _route_free(t):
    """(phrase, addr-spec) of 'phrase <addr>' with any source route
    (@hop1,@hop2:) removed from the address; None when t has no such
    form."""
    pos = t.find('<')
    if pos <= 0 or not t.endswith('>'):
        return None
    spec = t[pos + 1:-1]
    colon = spec.rfind(':')
    if colon > 0:
        spec = spec[colon + 1:]
    return t[:pos].strip(), spec


def parseaddr(t):
    """(name, address) of an address header value, like
    email.utils.parseaddr but right in cases it gets wrong: a phrase that
    looks like an address, and source routes.

    >>> parseaddr('spam@spammer.com <foo@example.com>')
    ('spam@spammer.com', 'foo@example.com')
    >>> parseaddr('God@heaven <@hop1.org,@hop2.net:jeff@spec.org>')
    ('God@heaven', 'jeff@spec.org')
    >>> parseaddr('Real Name ((comment)) <addr...@example.com>')
    ('Real Name (comment)', 'addr...@example.com')
    """
    name, addr = email.utils.parseaddr(t)
    if name and addr:
        return name, addr
    split = _route_free(t)
    if split is None:
        return name, addr
    phrase, spec = split
    if not name:
        return email.utils.parseaddr('"%s" <%s>' % (phrase, spec))
    return email.utils.parseaddr('%s<%s>' % (phrase, spec))


def decode(s, convert_eols=None):
    """Base64 decode s, tolerating missing '=' padding; with convert_eols,
    CRLFs in the result become convert_eols.  Empty input comes back as
    it is."""
    if not s:
        return s
    s += '=' * (-len(s) % 4) if isinstance(s, str) else b'=' * (-len(s) % 4)
    data = binascii.a2b_base64(s)
    if convert_eols:
        if isinstance(convert_eols, str):
            convert_eols = convert_eols.encode('latin-1')
        data = data.replace(b'\r\n', convert_eols)
    return data


def parse_addr(t):
    """[user, domain] of an email address, [user] when it has no domain;
    <> around it and a source route (@mx:) before it are removed, and a
    quoted local part keeps its '@'.

    >>> parse_addr('"user@bar"@example.com')
    ['user@bar', 'example.com']
    >>> parse_addr('@mx.example.com:user@example.com')
    ['user', 'example.com']
    >>> parse_addr('@user@example.com')
    ['@user', 'example.com']
    """
    if t.startswith('<') and t.endswith('>'):
        t = t[1:-1]
    if t.startswith('"'):
        if t.endswith('"'):
            return [t[1:-1]]
        end = t.find('"@')
        if end > 0:
            return [t[1:end], t[end + 2:]]
    if t.startswith('@') and ':' in t:
        t = t.split(':', 1)[1]
    return t.rsplit('@', 1)


def parse_header(val):
    """A header value with its RFC 2047 encoded words decoded (spammers
    encode headers to hide words from filters); val itself when it has
    none or cannot be decoded.  Bytes are taken as UTF-8 (undecodable
    bytes as surrogate escapes).

    >>> parse_header('=?iso-8859-1?Q?Peter_=D8rum?= <orum@ditas.dk>')
    'Peter \\xd8rum <orum@ditas.dk>'
    """
    if isinstance(val, bytes):
        val = val.decode('utf-8', 'surrogateescape')
    try:
        parts = email.header.decode_header(val)
        if not parts or (len(parts) == 1 and not parts[0][1]):
            return val
        out = []
        for text, charset in parts:
            if not charset:
                out.append(text.decode() if isinstance(text, bytes)
                           else text)
                continue
            try:
                out.append(text.decode(charset, 'replace'))
            except LookupError:
                # An unknown charset: UTF-8 if that works, else give up.
                out.append(text.decode())
        return ''.join(out)
    except (UnicodeDecodeError, LookupError, ValueError,
            email.errors.HeaderParseError):
        return val
