"""Milter.dns: cached DNS lookups for one SMTP session (pymilter's API),
on dnspython.

This module needs the optional dependency dnspython:

    pip install pmcore-milter[dns]

pymilter's version sat on pydns and cannot run on Python 3 (it uses
reduce() without importing it).  The results keep pydns's shapes, which
callers such as Milter.dsn rely on: A as dotted-quad text, AAAA as the 16
packed bytes, MX as (preference, host), TXT and SPF as a list of byte
strings, names (PTR, CNAME, NS) as text without the final dot.
"""
import socket

try:
    import dns.exception
    import dns.rdatatype
    import dns.resolver
except ImportError as e:  # pragma: no cover - exercised in a subprocess
    raise ImportError('Milter.dns needs dnspython, the [dns] extra: '
                      'pip install pmcore-milter[dns] (%s)' % e) from e

__all__ = ['DNSError', 'DNSLookup', 'MAX_CNAME', 'Session',
           'get_resolver', 'set_resolver']

# Longest chain of CNAMEs Session.dns follows before it gives up.
MAX_CNAME = 10


class DNSError(dns.exception.DNSException):
    """A lookup that could not be answered (timeout, no server, CNAME loop),
    as opposed to a name with no records, which is an empty list."""


_resolver = None


def get_resolver():
    """The dnspython Resolver lookups use: the one set_resolver() gave, or
    one configured from /etc/resolv.conf on first use."""
    global _resolver
    if _resolver is None:
        _resolver = dns.resolver.Resolver()
    return _resolver


def set_resolver(resolver):
    """Make lookups use resolver (a dns.resolver.Resolver; None: the
    system's again)."""
    global _resolver
    _resolver = resolver


def _data(rd):
    """One record's data in pydns's shape."""
    t = rd.rdtype
    if t == dns.rdatatype.A:
        return rd.address
    if t == dns.rdatatype.AAAA:
        return socket.inet_pton(socket.AF_INET6, rd.address)
    if t == dns.rdatatype.MX:
        return (rd.preference, rd.exchange.to_text(omit_final_dot=True))
    if t in (dns.rdatatype.TXT, dns.rdatatype.SPF):
        return list(rd.strings)
    if t in (dns.rdatatype.PTR, dns.rdatatype.CNAME, dns.rdatatype.NS):
        return rd.target.to_text(omit_final_dot=True)
    return rd.to_text()


def DNSLookup(name, qtype):
    """Ask DNS for the qtype ('A', 'MX', ...) records of name.  Returns a
    list of ((name, type), data) for every record of the answer, which may
    hold other types (the CNAMEs that led to the answer); [] when the name
    or the records do not exist.  Raises DNSError when there is no answer
    at all (timeout, no server reachable, malformed reply)."""
    try:
        ans = get_resolver().resolve(name, qtype, raise_on_no_answer=False,
                                     search=False)
    except dns.resolver.NXDOMAIN:
        return []
    except dns.exception.DNSException as x:
        raise DNSError(str(x) or x.__class__.__name__)
    out = []
    for rrset in ans.response.answer:
        key = (rrset.name.to_text(omit_final_dot=True),
               dns.rdatatype.to_text(rrset.rdtype))
        out.extend((key, _data(rd)) for rd in rrset)
    return out


class Session(object):
    """DNS lookups with a cache and no TTL, meant to live for one session
    (an SMTP conversation): every record of every answer that is safe to
    keep is cached, so later questions are often answered without DNS."""

    # (query type, record type) pairs whose records may be cached from an
    # answer.  Records of other types in an answer (say the A records in a
    # PTR answer, which the connecting client controls) are not trusted
    # for other questions.
    SAFE2CACHE = frozenset((
        ('MX', 'MX'), ('MX', 'A'),
        ('CNAME', 'CNAME'), ('CNAME', 'A'),
        ('A', 'A'),
        ('AAAA', 'AAAA'),
        ('PTR', 'PTR'),
        ('NS', 'NS'), ('NS', 'A'),
        ('TXT', 'TXT'),
        ('SPF', 'SPF'),
    ))

    def __init__(self):
        self.cache = {}

    def _fetch(self, name, qtype):
        """Ask DNS, cache what may be cached, and return the target of a
        CNAME of name in the answer (None if there is none)."""
        cname = None
        for (rname, rtype), data in DNSLookup(name, qtype):
            if rtype == 'CNAME' and rname == name:
                cname = data
            if rtype == 'CNAME' or (qtype, rtype) in self.SAFE2CACHE:
                self.cache.setdefault((rname, rtype), []).append(data)
        return cname

    def dns(self, name, qtype, cnames=None):
        """The data of name's qtype records (see the module for shapes),
        from the cache or DNS; [] when there are none or name is not a
        valid DNS name.  CNAMEs are followed, up to MAX_CNAME of them;
        a longer chain or a loop raises DNSError."""
        name = name[:-1] if name.endswith('.') else name
        if any(not 0 < len(label) < 64 for label in name.split('.')):
            return []
        name = name.lower()
        found = self.cache.get((name, qtype))
        if found:
            return found
        known = self.cache.get((name, 'CNAME'))
        if known:
            # Cached from an earlier answer: go straight to the target.
            target = known[0]
        else:
            target = self._fetch(name, qtype)
            found = self.cache.get((name, qtype), [])
        if found or not target:
            return found
        cnames = cnames or {}
        if len(cnames) >= MAX_CNAME:
            raise DNSError('Length of CNAME chain exceeds %d' % MAX_CNAME)
        cnames[name] = target
        if target.lower().rstrip('.') in cnames:
            raise DNSError('CNAME loop')
        found = self.dns(target, qtype, cnames=cnames)
        if found:
            self.cache[(name, qtype)] = found
        return found

    def dns_txt(self, domainname, enc='ascii'):
        """The TXT records of domainname, each one string (its pieces
        joined, decoded with enc); DNSError if one cannot be decoded."""
        if not domainname:
            return []
        try:
            return [''.join(s.decode(enc) for s in strings)
                    for strings in self.dns(domainname, 'TXT')]
        except UnicodeError:
            raise DNSError('Non-ascii character in SPF TXT record.')
