"""AddrCache: a small file-backed cache of email addresses (and domains),
as pymilter's Milter.cache provides (for CBV/DSN bookkeeping).

File format, one entry per line: "address" (permanent) or
"address timestamp" (temporary, seconds since the epoch).  Entries with a
value (set as cache[addr] = value) live in memory only.
"""
import time

__all__ = ['AddrCache']


class AddrCache(object):
    """Addresses seen recently.  `in` and has_key also match a cached
    domain for an address in that domain."""

    time_format = '%Y%b%d %H:%M:%S %Z'  # kept for compatibility

    def __init__(self, renew=7, fname=None):
        self.age = renew          # days a temporary entry stays valid
        self.fname = fname
        self.cache = {}           # addr.lower() -> (timestamp or None, value)
        if fname:
            self.load(fname, renew)

    def load(self, fname, age=0):
        """Read entries from fname, dropping temporary ones older than age
        days (age 0 keeps them all)."""
        self.fname = fname
        if age:
            self.age = age
        now = time.time()
        try:
            fp = open(fname)
        except OSError:
            return
        with fp:
            for line in fp:
                parts = line.split()
                if not parts:
                    continue
                key = parts[0].lower()
                ts = None
                if len(parts) > 1:
                    try:
                        ts = float(parts[1])
                    except ValueError:
                        ts = now
                    if age and now - ts > age * 86400:
                        continue
                self.cache[key] = (ts, None)

    def _append(self, line):
        if self.fname:
            with open(self.fname, 'a') as fp:
                fp.write(line + '\n')

    def has_precise_key(self, sender):
        return sender.lower() in self.cache

    def has_key(self, sender):
        s = sender.lower()
        if s in self.cache:
            return True
        user, at, domain = s.rpartition('@')
        return bool(at) and domain in self.cache

    __contains__ = has_key

    def __getitem__(self, sender):
        s = sender.lower()
        try:
            return self.cache[s][1]
        except KeyError:
            user, at, domain = s.rpartition('@')
            if at and domain in self.cache:
                return self.cache[domain][1]
            raise

    def __setitem__(self, sender, value):
        s = sender.lower()
        now = time.time()
        self.cache[s] = (now, value)
        if value is None:  # only plain "seen" entries are persisted
            self._append('%s %d' % (s, int(now)))

    def addperm(self, sender, value=None):
        s = sender.lower()
        self.cache[s] = (None, value)
        self._append(s)

    def __delitem__(self, sender):
        del self.cache[sender.lower()]

    def clear(self):
        self.cache.clear()
