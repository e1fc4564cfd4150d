"""A milter process for test_peer_end.py: python3 peer_end_helper.py PORT
EVENTS.  Every Milter.Base object it makes writes 'new ID' when created and
'close ID' from close() to the EVENTS file; prints 'ready' once listening."""
import itertools
import os
import sys

import Milter

PORT, EVENTS = sys.argv[1], sys.argv[2]
_log = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
_ids = itertools.count(1)


def note(what, ident):
    os.write(_log, ('%s %d\n' % (what, ident)).encode())


class Counted(Milter.Base):
    def __init__(self):
        self.ident = next(_ids)
        note('new', self.ident)

    def envfrom(self, f, *a):
        return Milter.CONTINUE

    def eom(self):
        self.addheader('X-Peer-End', 'yes')
        return Milter.CONTINUE

    def close(self):
        note('close', self.ident)
        return Milter.CONTINUE


Milter.factory = Counted
print('ready', flush=True)
Milter.runmilter('peer_end', 'inet:%s@127.0.0.1' % PORT, timeout=30)
