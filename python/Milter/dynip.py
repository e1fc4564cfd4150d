"""Milter.dynip: guess from its PTR name whether a client address is a
dynamic (end-user) one (pymilter's API and heuristic; no DNS).

Access providers name such hosts after their address (c-1-2-3-4.isp.net,
4.3.2.1.dyn.isp.net, 01020304.isp.net, dsl-001002003004.isp.net) or with
words like adsl, cable, ppp next to a number.  is_dynip looks for the
address's numbers in the name in the orders providers use, then for the
name patterns of hpats, in which '<3>' stands for the address's last
number.
"""
import re

__all__ = ['hpats', 'ip3', 'is_dynip', 'rehmac']

# The numbers (runs of up to 3 digits) in a host name.
ip3 = re.compile('[0-9]{1,3}')

# Name patterns of dynamic hosts; '<3>' is where the last number of the
# address was found in the name.
hpats = (
    # hex or encoded MAC-like labels
    r'h[0-9a-f]{12}[.]',
    r'h\d*n\d*c\d*o\d*\.',
    r'pcp\d{6,10}pcs[.]',
    r'no-reverse',
    r'S[0-9a-f]{16}[.][a-z]{2}[.]',
    # the address's last number after a customer or access word
    r'user<3>\.',
    r'[Cc]ust<3>\.',
    r'^<3>\.',
    r'ppp[^.]*<3>\.',
    r'-ppp\d*\.',
    r'\d*-<3>\.',
    r'[0-9a-f]{1,3}-<3>\.',
    r'p<3>\.pool',
    r'h<3>\.',
    # access technology labels
    r'xdsl-\d*\.',
    r'-\d*-\d*\.',
    r'\.adsl\.',
    r'\.cable\.',
)
rehmac = re.compile('|'.join(hpats))


def _numbers_match(nums, quad):
    """Whether the first four numbers of a host name spell the address's
    in one of the orders seen in provider names."""
    g = nums[:4]
    r = g[::-1]
    front3, back3, back2 = quad[:3], quad[1:], quad[2:]
    return (g[-3:] in (back3, front3) or
            (g[0] == quad[3] and g[1:3] == quad[:2]) or
            g[-2:] == back2 or
            r[:3] in (back3, front3) or
            back2 in (r[:2], r[-2:]))


def is_dynip(host, addr):
    """True if host, the PTR name of addr (an IPv4 or IPv6 address in
    text), looks like that of a dynamic address.  A host in brackets
    (no PTR name) counts as dynamic.

    >>> is_dynip('post3.fabulousdealz.com', '69.60.99.112')
    False
    >>> is_dynip('adsl-69-208-201-177.dsl.emhril.ameritech.net',
    ...          '69.208.201.177')
    True
    >>> is_dynip('[1.2.3.4]', '1.2.3.4')
    True
    """
    if host.startswith('[') and host.endswith(']'):
        return True
    if not addr:
        return False
    if addr in host:
        return True
    if ':' in addr:
        return False    # only IPv4 names are known
    parts = addr.split('.')
    quad = [int(p) for p in parts]
    marked = host
    nums = [int(n) for n in ip3.findall(host)]
    if nums:
        if _numbers_match(nums, quad):
            return True
        for m in ip3.finditer(host):
            if int(m.group()) == quad[3]:
                marked = host[:m.start()] + '<3>' + host[m.end():]
                break
    if rehmac.search(marked):
        return True
    if ''.join(parts[:3]) in host or ''.join(parts[1:]) in host:
        return True
    return '%02x%02x%02x%02x' % tuple(quad) in host.lower()
