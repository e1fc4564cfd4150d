"""Milter.policy: per-sender policy from a Sendmail-style access map
(pymilter's API).

An access map holds keys "TAG!address", "TAG!domain", "TAG!" and "TAG"
(the ':' of the source file written as '!', as `tr : ! | makemap` does),
each with a policy word such as OK or REJECT.  MTAPolicy(sender, conf)
answers getPolicy(tag) with the most specific entry for the sender.

The map is a Berkeley DB hash file (Sendmail's makemap) when a Berkeley DB
module is installed (bsddb3 or berkeleydb); otherwise any file Python's
own dbm module opens.  pymilter 1.0.5 needs bsddb3 on Python 3 and fails
to import without it.
"""
import dbm

__all__ = ['DB', 'dbmopen', 'MTAPolicy']


def _berkeley():
    """The installed Berkeley DB module's db namespace, or None."""
    for name in ('bsddb3', 'berkeleydb'):
        try:
            return __import__(name, fromlist=['db']).db
        except ImportError:
            continue
    return None


# The Berkeley DB module maps are read with (bsddb3.db, as pymilter names
# it), None when neither bsddb3 nor berkeleydb is installed.
db = _berkeley()


class DB(object):
    """A read-only key -> value map on disk: db[key] (bytes) raises
    KeyError for a missing or empty value, as pymilter's does."""

    def open(self, fname, mode):
        if mode != 'r':
            raise ValueError('unsupported mode: %r (only "r")' % (mode,))
        bdb = db
        if bdb is not None:
            self.f = bdb.DB()
            self.f.open(fname, flags=bdb.DB_RDONLY)
            self._get = self.f.get
        else:
            self.f = dbm.open(fname, 'r')
            self._get = self.f.get

    def __getitem__(self, key):
        v = self._get(key)
        if not v:
            raise KeyError(key)
        return v

    def close(self):
        self.f.close()


def dbmopen(fname, mode):
    """Open the map fname (mode 'r' only) as a DB."""
    f = DB()
    f.open(fname, mode)
    return f


class MTAPolicy(object):
    """Policy for one sender from the access map.  Use as a context
    manager: the map is open inside the with block only.

    conf supplies access_file (the map, unless access_file is given) and
    access_file_nulls (true when the map's keys end in a NUL byte, as
    `makemap -N` writes them; a value's trailing NULs are dropped either
    way)."""

    def __init__(self, sender, conf, access_file=None):
        self.access_file = access_file or conf.access_file
        self.use_nulls = conf.access_file_nulls
        self.sender = sender
        self.domain = sender.split('@')[-1].lower()
        self.acf = None

    def __enter__(self):
        self.acf = None
        if self.access_file:
            try:
                self.acf = dbmopen(self.access_file, 'r')
            except Exception:
                print('%s: Cannot open for reading' % self.access_file)
                raise
        return self

    def __exit__(self, t, v, b):
        self.close()

    def close(self):
        if self.acf:
            self.acf.close()

    def getPolicy(self, pfx):
        """The policy word for tag pfx: the first entry found for
        pfx!sender, pfx!domain, pfx! and pfx; None when there is none (or
        the map is not open)."""
        if not self.acf:
            return None
        nul = b'\0' if self.use_nulls else b''
        tag = pfx.encode()
        for key in (tag + b'!' + self.sender.encode(),
                    tag + b'!' + self.domain.encode(),
                    tag + b'!', tag):
            try:
                return self.acf[key + nul].rstrip(b'\0').decode()
            except KeyError:
                continue
        return None
