"""Milter.pyip6: IPv6 text <-> packed conversion in pure Python
(pymilter's API, with pymilter's text forms).

The forms differ from socket.inet_ntop's: IPv4-mapped addresses are
written '::FFFF:a.b.c.d', every address whose first 80 bits and next 16
bits are zero is written '::a.b.c.d' (so ::1 is '::0.0.0.1'), and the
longest run of zero groups (the first one on a tie) is shortened to '::'
even when it is a single group.  inet_pton also takes a bare dotted quad,
as the IPv4-mapped address.
"""
import re
import struct

__all__ = ['PAT_IP4', 'RE_IP4', 'inet_ntop', 'inet_pton']

# A dotted quad, each part 0-255 written without leading zeros.
PAT_IP4 = r'\.'.join([r'(?:\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5])'] * 4)
# A dotted quad at the end of a string.
RE_IP4 = re.compile(PAT_IP4 + '$')


def inet_ntop(s):
    """Text form of a 16-byte packed IPv6 address.

    >>> inet_ntop(struct.pack('!8H', 0, 0, 0, 0, 0, 0xFFFF, 0x0102, 0x0304))
    '::FFFF:1.2.3.4'
    >>> inet_ntop(struct.pack('!8H', 0x1234, 0x5678, 0, 0, 0, 0, 0x102, 0x304))
    '1234:5678::102:304'
    >>> inet_ntop(struct.pack('!8H', 0x1234, 0x5678, 0, 0x102, 0x304, 0, 0, 0))
    '1234:5678:0:102:304::'
    """
    words = struct.unpack('!8H', s)
    if not any(words):
        return '::'
    if not any(words[:5]) and words[5] in (0, 0xFFFF):
        quad = '.'.join(str(b) for b in bytearray(s[12:]))
        return ('::FFFF:' if words[5] else '::') + quad
    # The longest run of zero groups; the first of equal runs.
    best, start = (0, 0), None
    for i, w in enumerate(words + (1,)):
        if w == 0 and start is None:
            start = i
        elif w != 0 and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    text = ['%x' % w for w in words]
    if best[1] == best[0]:
        return ':'.join(text)
    return ':'.join(text[:best[0]]) + '::' + ':'.join(text[best[1]:])


def _groups(text):
    """The 16-bit values of colon-separated hex groups ('' for none)."""
    if not text:
        return []
    out = [int(g, 16) for g in text.split(':')]
    if any(not 0 <= v <= 0xFFFF for v in out):
        raise ValueError(text)
    return out


def inet_pton(p):
    """16-byte packed form of an IPv6 address in text; ValueError(p) when
    it is none.

    >>> struct.unpack('!8H', inet_pton('1234::5678'))
    (4660, 0, 0, 0, 0, 0, 0, 22136)
    >>> struct.unpack('!8H', inet_pton('1.2.3.4'))
    (0, 0, 0, 0, 0, 65535, 258, 772)
    """
    if p == '::':
        return bytes(16)
    s = p
    try:
        m = RE_IP4.search(s)
        if m:
            quad = [int(x) for x in s[m.start():].split('.')]
            if m.start() == 0:
                return struct.pack('!QL4B', 0, 0xFFFF, *quad)
            # The dotted quad is the last two groups.
            s = s[:m.start()] + '%x%02x:%x%02x' % tuple(quad)
        halves = s.split('::')
        if len(halves) == 2:
            head, tail = _groups(halves[0]), _groups(halves[1])
            if len(head) + len(tail) <= 8:
                zeros = [0] * (8 - len(head) - len(tail))
                return struct.pack('!8H', *(head + zeros + tail))
        elif len(halves) == 1:
            words = _groups(s)
            if len(words) == 8:
                return struct.pack('!8H', *words)
    except ValueError:
        pass
    raise ValueError(p)
