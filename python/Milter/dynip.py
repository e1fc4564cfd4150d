"""Guess whether a host name belongs to a dynamic (end-user) address
(pymilter's Milter.dynip.is_dynip), from the name alone: no DNS."""
import re

__all__ = ['is_dynip']

_WORDS = re.compile(
    r'(^|[.\-_\d])(dyn(amic)?|dhcp|dial(up)?|ppp|pppoe|dsl|adsl|xdsl|'
    r'cable|pool|client|host|user|cust(omer)?|broadband|bb|res(idential)?'
    r'|static|ip)([.\-_\d]|$)', re.I)


def is_dynip(host, addr):
    """True when host looks generated from addr (its numbers appear in the
    name in order or reversed, dotted, dashed, run together or in hex) or
    uses a typical access-network word next to digits.

    >>> is_dynip('c-1-2-3-4.hsd1.example.net', '1.2.3.4')
    True
    >>> is_dynip('4.3.2.1.dyn.example.net', '1.2.3.4')
    True
    >>> is_dynip('mail.example.com', '1.2.3.4')
    False
    """
    h = host.lower()
    if addr.startswith('[') and addr.endswith(']'):
        addr = addr[1:-1]
    parts = addr.split('.')
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        for seq in (parts, parts[::-1]):
            if re.search(r'(^|\D)' + r'[.\-_x]?'.join(seq) + r'(\D|$)', h):
                return True
            if ''.join('%02x' % int(p) for p in seq) in h:
                return True
            padded = ''.join('%03d' % int(p) for p in seq)
            if padded in h:
                return True
    return bool(re.search(r'\d', h) and _WORDS.search(h.split('.')[0]))
