"""Milter.cache.AddrCache: addresses (and domains) seen recently, kept in
memory and in a text file (pymilter's API and file format), for example
the senders a milter has validated or sent a DSN to.

File format, one entry a line: "address" for an entry added by hand or
with addperm(), "address timestamp" for one added as cache[address] =
None, the timestamp written with time_format in local time.  load() drops
entries older than the cache's age in days (and lines whose timestamp
cannot be read) and rewrites the file without them, keeping the previous
version as FILE.old; the rewrite goes through Milter.plock.PLock, so two
processes never write it at once.  Entries with a value (cache[address] =
'result') live in memory only.
"""
import time

from Milter.plock import PLock

__all__ = ['AddrCache']

_DAY = 24 * 60 * 60


class AddrCache(object):
    """Addresses seen within the last `renew` days.  `in`, has_key and []
    also answer for an address from an entry for its domain."""

    time_format = '%Y%b%d %H:%M:%S %Z'

    def __init__(self, renew=7, fname=None):
        self.age = renew
        self.cache = {}         # address.lower() -> (time or None, value)
        self.fname = fname

    def load(self, fname, age=0):
        """Read fname (missing: an empty cache), dropping entries older
        than age days (default: the cache's age) and rewriting the file
        without them.  Entries without a timestamp count as seen now."""
        age = age or self.age
        self.fname = fname
        self.cache = {}
        now = time.time()
        oldest = now - age * _DAY
        lock = PLock(fname)
        out = lock.lock()
        dropped = False
        try:
            try:
                fp = open(fname)
            except OSError:
                fp = None
            for line in fp or ():
                fields = line.strip().split(None, 1)
                if len(fields) != 2:
                    self.cache[line.strip().lower()] = (now, None)
                else:
                    try:
                        t = time.mktime(time.strptime(fields[1],
                                                      self.time_format))
                    except ValueError:
                        t = None        # garbage: dropped
                    if t is None or t < oldest:
                        dropped = True
                        continue
                    self.cache[fields[0].lower()] = (t, None)
                out.write(line)
            if fp:
                fp.close()
            if dropped:
                lock.commit(fname + '.old')
            else:
                lock.unlock()
        except IOError:
            lock.unlock()

    def _fresh(self, key):
        """(time, value) of a live entry, else KeyError; an expired entry
        is removed.  A permanent entry has no time."""
        ts, value = self.cache[key]
        if not ts or ts > time.time() - self.age * _DAY:
            return ts, value
        del self.cache[key]
        raise KeyError(key)

    def has_precise_key(self, sender):
        """True if sender itself (not its domain) is cached and live."""
        try:
            self._fresh(sender and sender.lower())
        except KeyError:
            return False
        return True

    def has_key(self, sender):
        """True if sender, or the domain after its first '@', is cached
        and live."""
        if self.has_precise_key(sender):
            return True
        parts = sender.split('@', 1) if sender else []
        return len(parts) == 2 and self.has_precise_key(parts[1])

    __contains__ = has_key

    def __getitem__(self, sender):
        """The value cached for sender, or for the domain after its
        first '@'; KeyError if neither is cached and live."""
        try:
            return self._fresh(sender.lower())[1]
        except KeyError:
            parts = sender.split('@', 1)
            if len(parts) != 2:
                raise KeyError(sender)
            return self[parts[1]]

    def addperm(self, sender, res=None):
        """Cache sender for good; without res it is also written to the
        file (as a line without timestamp).  A sender already permanent
        is left as it is (with its value)."""
        key = sender.lower()
        try:
            ts, res = self._fresh(key)[0], self.cache[key][1]
            if not ts:
                return
        except KeyError:
            pass
        self.cache[key] = (None, res)
        if not res and self.fname:
            with open(self.fname, 'a') as fp:
                print(sender, file=fp)

    def __setitem__(self, sender, res):
        """Cache sender now with value res; res None (or false) also
        writes it to the file with the time."""
        now = time.time()
        self.cache[sender.lower()] = (now, res)
        if not res and self.fname:
            stamp = time.strftime(self.time_format, time.localtime(now))
            with open(self.fname, 'a') as fp:
                print(sender, stamp, file=fp)

    def __delitem__(self, sender):
        del self.cache[sender.lower()]

    def __len__(self):
        return len(self.cache)

    def clear(self):
        self.cache.clear()
