"""Template: an async milter.  Callbacks are coroutines: while one awaits
(a DNS query, an HTTP call to a reputation service), the engine serves
other connections; each connection's callbacks still run one at a time,
in order.

Run:  python3 async_milter.py unix:/run/milter/async.sock [workers]
With a workers count, the milter runs that many prefork worker
processes, each with its own event loop.

The reputation lookup here is a stand-in (a table and a short sleep):
replace `lookup` with a real asynchronous client.
"""
import asyncio
import sys

import Milter

SCORES = {'example.org': 90, 'spam.example': 5}


async def lookup(domain):
    """A sender domain's reputation, 0 (bad) to 100 (good); 50 unknown."""
    await asyncio.sleep(0.05)  # the network round trip
    return SCORES.get(domain.lower(), 50)


class AsyncScore(Milter.Base):
    """Rejects senders with a poor reputation, stamps the others."""

    def __init__(self):
        self.score = None

    async def envfrom(self, mailfrom, *params):
        addr = mailfrom.strip('<>')
        domain = addr.rpartition('@')[2]
        self.score = await lookup(domain) if domain else 50
        if self.score < 10:
            self.setreply('550', '5.7.1',
                          'sender domain %s has a poor reputation' % domain)
            return Milter.REJECT
        return Milter.CONTINUE

    async def eom(self):
        # Actions are allowed from the coroutine, as from a plain eom.
        self.addheader('X-Sender-Score', str(self.score))
        return Milter.CONTINUE


def main(argv):
    Milter.factory = AsyncScore
    workers = int(argv[2]) if len(argv) > 2 else 0
    Milter.runmilter('async_milter', argv[1] if len(argv) > 1 else
                     'inet:8895@127.0.0.1', timeout=600, workers=workers)


if __name__ == '__main__':
    main(sys.argv)
