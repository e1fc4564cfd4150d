"""IPv6 text <-> packed conversion (pymilter's Milter.pyip6), on top of
the socket module."""
import socket

__all__ = ['inet_ntop', 'inet_pton']


def inet_ntop(s):
    """Text form of a 16-byte packed IPv6 address.

    >>> inet_ntop(b'\\x20\\x01\\x0d\\xb8' + b'\\0' * 11 + b'\\1')
    '2001:db8::1'
    """
    return socket.inet_ntop(socket.AF_INET6, s)


def inet_pton(p):
    """16-byte packed form of an IPv6 address in text.

    >>> inet_pton('::1') == b'\\0' * 15 + b'\\1'
    True
    """
    return socket.inet_pton(socket.AF_INET6, p)
