"""Network-free helpers milters import from pymilter's Milter.utils.

Written from the documented names and behaviour: parse_addr, parse_header,
parseaddr, iniplist, addr2bin, bin2long6.  Functions that need DNS are not
provided.
"""
import email.header
import email.utils
import ipaddress
import socket
import struct

__all__ = ['addr2bin', 'bin2long6', 'iniplist', 'parse_addr',
           'parse_header', 'parseaddr']


def addr2bin(s):
    """The 32-bit integer of a dotted-quad IPv4 address."""
    return struct.unpack('!L', socket.inet_aton(s))[0]


def bin2long6(s):
    """The integer of a 16-byte packed IPv6 address."""
    hi, lo = struct.unpack('!QQ', s)
    return (hi << 64) | lo


def _network(item):
    """An ip_network for 'a.b.c.d', 'a.b.c.d/n', 'x::y/n' and the short
    IPv4 prefixes pymilter accepts ('10.1/16', '192.168')."""
    addr, _, bits = item.partition('/')
    if ':' not in addr:
        parts = addr.split('.')
        if len(parts) < 4:
            if not bits:
                bits = str(8 * len(parts))
            addr = '.'.join(parts + ['0'] * (4 - len(parts)))
    return ipaddress.ip_network('%s/%s' % (addr, bits) if bits else addr,
                                strict=False)


def iniplist(ipaddr, iplist):
    """True if ipaddr is in one of the networks of iplist (addresses,
    CIDR blocks, short IPv4 prefixes; IPv4-mapped IPv6 addresses match
    their IPv4 networks).  Host names in iplist need DNS and are skipped."""
    ip = ipaddress.ip_address(ipaddr)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for item in iplist:
        try:
            net = _network(item)
        except ValueError:
            continue  # a host name: would need DNS
        if ip.version == net.version and ip in net:
            return True
    return False


def parseaddr(t):
    """Split an address like email.utils.parseaddr, keeping a trailing
    comment as the name when there is no phrase."""
    return email.utils.parseaddr(t)


def parse_addr(t):
    """Split an email address into [user, domain] (or [user] without '@');
    surrounding <> are removed.  Quoted local parts keep their '@'."""
    if t.startswith('<') and t.endswith('>'):
        t = t[1:-1]
    if t.startswith('"'):
        end = t.rfind('"')
        rest = t[end + 1:]
        if rest.startswith('@'):
            return [t[1:end], rest[1:]]
        return [t[1:end]]
    user, at, dom = t.rpartition('@')
    return [user, dom] if at else [dom]


def parse_header(val):
    """Decode an RFC 2047 header value into a str (undecodable charsets
    fall back to latin-1, never an exception)."""
    if isinstance(val, bytes):
        val = val.decode('utf-8', 'surrogateescape')
    try:
        parts = email.header.decode_header(val)
    except email.errors.HeaderParseError:
        return val
    out = []
    for text, charset in parts:
        if isinstance(text, bytes):
            try:
                text = text.decode(charset or 'ascii')
            except (LookupError, UnicodeDecodeError):
                text = text.decode('latin-1')
        out.append(text)
    return ''.join(out)
