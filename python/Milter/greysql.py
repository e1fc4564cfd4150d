"""Milter.greysql.Greylist: greylisting triples (ip, sender, recipient)
kept in an sqlite3 database, with pymilter's interface and timing rules.

check() answers how many messages of a triple have been let through: 0 while
the triple is new or still inside its greylist delay (the caller should
TEMPFAIL), then 1, 2, ... for each later attempt.  A triple that did not come
back within `grey_expire` hours after the delay starts over, and records not
seen for `grey_retain` days start over too (clean() deletes them).
`timeinc` shifts "now" by that many seconds, for tests.
"""
import logging
import sqlite3
import threading
import time

__all__ = ['Greylist']

log = logging.getLogger('milter.greylist')

# One lock for every Greylist of the process: milter callbacks run in
# several threads and sqlite connections are not shared between them.
_lock = threading.Lock()

# Retries closer than this to the end of the delay still count as early,
# so a client retrying exactly at the delay is not let in by clock skew.
_SLACK = 5

_SCHEMA = '''create table if not exists greylist(
    ip text, sender text, recipient text,
    firstseen timestamp, lastseen timestamp, cnt integer, umis text,
    primary key (ip, sender, recipient))'''


class Greylist(object):

    def __init__(self, dbname, grey_time=10, grey_expire=4, grey_retain=36):
        self.ignoreLastByte = False
        self.greylist_time = grey_time * 60
        self.greylist_expire = grey_expire * 3600
        self.greylist_retain = grey_retain * 24 * 3600
        self.conn = sqlite3.connect(dbname, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        with self.conn:
            self.conn.execute(_SCHEMA)

    def _restart(self, cur, key, now):
        cur.execute('update greylist set firstseen=?, lastseen=?, cnt=0, '
                    'umis=null where ip=? and sender=? and recipient=?',
                    (now, now) + key)

    def check(self, ip, sender, recipient, timeinc=0):
        """Number of messages allowed so far for this triple (0: defer)."""
        key = (ip, sender, recipient)
        now = time.time() + timeinc
        with _lock:
            cur = self.conn.cursor()
            try:
                cur.execute('begin immediate')
                cur.execute('select firstseen, lastseen, cnt from greylist '
                            'where ip=? and sender=? and recipient=?', key)
                row = cur.fetchone()
                cnt = 0
                if row is None:
                    cur.execute('insert into greylist(ip, sender, recipient,'
                                ' firstseen, lastseen, cnt, umis) '
                                'values (?, ?, ?, ?, ?, 0, null)',
                                key + (now, now))
                elif now > row['lastseen'] + self.greylist_retain:
                    log.debug('Expired greylist: %s:%s:%s', *key)
                    self._restart(cur, key, now)
                elif now < row['firstseen'] + self.greylist_time + _SLACK:
                    log.debug('Early greylist: %s:%s:%s', *key)
                    cur.execute('update greylist set lastseen=? where ip=? '
                                'and sender=? and recipient=?', (now,) + key)
                elif row['cnt'] or \
                        now < row['firstseen'] + self.greylist_expire:
                    cnt = row['cnt'] + 1
                    log.debug('Active greylist(%d): %s:%s:%s', cnt, *key)
                    cur.execute('update greylist set lastseen=?, cnt=? '
                                'where ip=? and sender=? and recipient=?',
                                (now, cnt) + key)
                else:
                    log.debug('Late greylist: %s:%s:%s', *key)
                    self._restart(cur, key, now)
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                raise
            finally:
                cur.close()
        return cnt

    def clean(self, timeinc=0):
        """Delete records not seen within the retention time; returns how
        many were deleted."""
        cutoff = time.time() + timeinc - self.greylist_retain
        with _lock:
            cur = self.conn.cursor()
            try:
                cur.execute('delete from greylist where lastseen < ?',
                            (cutoff,))
                n = cur.rowcount
                self.conn.commit()
            finally:
                cur.close()
        return n

    def import_csv(self, fp):
        """Load rows ip,sender,recipient,firstseen,lastseen,cnt,umis."""
        import csv
        with _lock, self.conn:
            self.conn.executemany(
                'insert into greylist(ip, sender, recipient, firstseen, '
                'lastseen, cnt, umis) values (?, ?, ?, ?, ?, ?, ?)',
                csv.reader(fp))

    def close(self):
        self.conn.close()
