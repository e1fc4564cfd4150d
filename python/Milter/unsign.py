"""Milter.unsign: recover the original address from a signed return
address (pymilter's API).

Signing schemes (SRS, SES, BATV, ...) put a variable signature into the
local part of a MAIL FROM.  pymilter declares unsign() for code that wants
the address the signature stands for, but has never implemented it: the
address comes back unchanged, and so it does here, so a caller's results
stay the same on either package.
"""

__all__ = ['unsign']


def unsign(s):
    """The address s with any signature removed; no scheme is decoded yet,
    so this is s itself.

    >>> unsign('SRS0=8Y3CZ=3U=example.org=bill@example.com')
    'SRS0=8Y3CZ=3U=example.org=bill@example.com'
    """
    return s
