"""Milter.greylist.Greylist: greylisting triples kept in a shelve file
(pymilter's API; pymilter 1.0.5's module imports the Python 2 `thread`
module and cannot be imported on Python 3).

check(ip, sender, recipient) answers how many messages of the triple have
been let through: 0 while the triple is new or inside its greylist delay
(the caller should TEMPFAIL), then 1, 2, ... for each later attempt.  A
triple that did not come back within grey_expire hours starts over, and so
does one not seen for grey_retain days (clean() deletes those).  timeinc
shifts "now" by that many seconds, for tests.  Milter.greysql.Greylist is
the same on sqlite3.
"""
import logging
import shelve
import threading
import time
import urllib.parse

__all__ = ['Greylist', 'Record', 'quoteAddress']

log = logging.getLogger('milter.greylist')

# Retries closer than this to the end of the delay still count as early,
# so a client retrying exactly at the delay is not let in by clock skew.
_SLACK = 5


def quoteAddress(s):
    """s (a local part or domain) %-escaped so that it is safe as part of
    a key or a file name: everything but letters, digits and @_-+~!.%
    is escaped, and so is a leading '.'.

    >>> quoteAddress('.a b/c@example.com')
    '%2ea%20b%2Fc@example.com'
    """
    s = urllib.parse.quote(s, safe='@_-+~!.%')
    if s.startswith('.'):
        s = '%2e' + s[1:]
    return s


class Record(object):
    """One triple: when it was first and last seen, how many messages
    passed (cnt), and umis (kept for the caller, unused here)."""
    __slots__ = ('firstseen', 'lastseen', 'umis', 'cnt')

    def __init__(self, timeinc=0):
        self.firstseen = self.lastseen = time.time() + timeinc
        self.cnt = 0
        self.umis = None

    def __str__(self):
        return 'Grey[%s:%s:%s:%d]' % (time.ctime(self.firstseen),
                                      time.ctime(self.lastseen),
                                      self.umis, self.cnt)


class Greylist(object):
    """Greylist on the shelve file dbname; grey_time in minutes,
    grey_expire in hours, grey_retain in days."""

    def __init__(self, dbname, grey_time=10, grey_expire=4, grey_retain=36):
        self.ignoreLastByte = False
        self.greylist_time = grey_time * 60
        self.greylist_expire = grey_expire * 3600
        self.greylist_retain = grey_retain * 24 * 3600
        self.dbp = shelve.open(dbname, 'c', protocol=2)
        # Milter callbacks run in several threads; a shelf is not safe to
        # share without a lock.
        self.lock = threading.Lock()

    def _next(self, r, now, timeinc, key):
        """The record after one more attempt at time now."""
        if now > r.lastseen + self.greylist_retain:
            log.debug('Expired greylist: %s', key)
            return Record(timeinc)
        if now < r.firstseen + self.greylist_time + _SLACK:
            log.debug('Early greylist: %s', key)
            r.lastseen = now
            return r
        if r.cnt or now < r.firstseen + self.greylist_expire:
            r.lastseen = now
            r.cnt += 1
            log.debug('Active greylist(%d): %s', r.cnt, key)
            return r
        log.debug('Late greylist: %s', key)
        return Record(timeinc)

    def check(self, ip, sender, recipient, timeinc=0):
        """Number of messages allowed so far for this triple (0: defer)."""
        key = ':'.join((ip, quoteAddress(sender), quoteAddress(recipient)))
        with self.lock:
            try:
                r = self.dbp[key]
            except KeyError:
                r = Record(timeinc)
            else:
                r = self._next(r, time.time() + timeinc, timeinc, key)
            self.dbp[key] = r
            self.dbp.sync()
        return r.cnt

    def clean(self, timeinc=0):
        """Delete records not seen within the retention time; returns how
        many were deleted."""
        n = 0
        with self.lock:
            for key in list(self.dbp.keys()):
                if time.time() + timeinc > \
                        self.dbp[key].lastseen + self.greylist_retain:
                    del self.dbp[key]
                    n += 1
            self.dbp.sync()
        return n

    def export_csv(self, fp, timeinc=0):
        """Write the records still retained as CSV rows
        ip,sender,recipient,firstseen,lastseen,cnt,umis (sender and
        recipient as quoteAddress left them)."""
        import csv
        w = csv.writer(fp)
        now = time.time() + timeinc
        with self.lock:
            for key in list(self.dbp.keys()):
                r = self.dbp[key]
                if now > r.lastseen + self.greylist_retain:
                    continue
                ip, sender, recipient = key.rsplit(':', 2)
                w.writerow([ip, sender, recipient, r.firstseen, r.lastseen,
                            r.cnt, r.umis])

    def close(self):
        self.dbp.close()
