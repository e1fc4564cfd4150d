"""A milter process for test_async.py: python3 aio_helper.py MODE SOCKET.
Prints 'ready' once listening and what main() did at the end.
  async     Milter.Base subclass with async def callbacks, 2 pool threads
  lowlevel  coroutine functions given to milter.set_*_callback/register
  prefork   main(workers=2): a blocking envfrom, an async eom
  inline    as async, with main(inline=True)"""
import asyncio
import os
import sys
import time

import milter
import Milter

MODE, SOCK = sys.argv[1], sys.argv[2]
NAP = 0.3


class Async(Milter.Base):
    def __init__(self):
        self.seq = []

    async def envfrom(self, f, *a):
        self.seq = ['envfrom']
        await asyncio.sleep(NAP)
        if f == '<boom@x>':
            raise ValueError('boom in a coroutine')
        return Milter.CONTINUE

    async def envrcpt(self, to, *a):
        self.seq.append('envrcpt')
        await asyncio.sleep(0.01)
        if to == '<bad@x>':
            self.setreply('550', '5.1.1', 'no such user (async)')
            return Milter.REJECT
        return Milter.CONTINUE

    @Milter.noreply
    async def header(self, name, value):
        self.seq.append('header')
        await asyncio.sleep(0.01)
        return Milter.CONTINUE

    async def eom(self):
        self.seq.append('eom')
        print('eom awaits', flush=True)  # for tests that act meanwhile
        await asyncio.sleep(NAP)
        self.progress()
        self.addheader('X-Async', self.getsymval('i') or 'no-qid')
        self.addheader('X-Seq', ','.join(self.seq))
        return Milter.CONTINUE

    async def close(self):
        await asyncio.sleep(0)
        return Milter.CONTINUE


class Fork(Milter.Base):
    slow = False

    def envfrom(self, f, *a):
        self.slow = f == '<slow@x>'
        if self.slow:
            # Holds this worker's loop until a message was served by the
            # other worker (a file, as they are processes), at most 10 s.
            print('slow in envfrom', flush=True)
            end = time.monotonic() + 10
            while (not os.path.exists(SOCK + '.beside') and
                   time.monotonic() < end):
                time.sleep(0.01)
        return Milter.CONTINUE

    async def eom(self):
        if not self.slow:
            open(SOCK + '.beside', 'w').close()
        await asyncio.sleep(0.01)
        self.addheader('X-Pid', str(os.getpid()))
        return Milter.CONTINUE


async def ll_envfrom(ctx, f, *a):
    await asyncio.sleep(NAP)
    return milter.CONTINUE


async def ll_eom(ctx):
    await asyncio.sleep(0.01)
    ctx.addheader('X-Lowlevel', 'yes')
    return milter.CONTINUE


def children():
    """Processes whose parent is this one (zombies included)."""
    me = str(os.getpid())
    n = 0
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                st = f.read()
        except OSError:
            continue
        if st[st.rindex(')') + 2:].split()[1] == me:
            n += 1
    return n


def main():
    milter.setconn('unix:' + SOCK)
    if MODE == 'lowlevel':
        milter.set_envfrom_callback(ll_envfrom)
        milter.set_eom_callback(ll_eom)
        milter.register('aio')
        milter.opensocket(True)
        print('ready', flush=True)
        milter.main(threads=2)
    else:
        Milter.factory = Fork if MODE == 'prefork' else Async
        cb = Milter._callbacks()
        for k in ('connect', 'envfrom', 'envrcpt', 'header', 'eoh', 'body',
                  'eom', 'abort', 'close'):
            getattr(milter, 'set_%s_callback' % k)(cb[k])
        milter.register('aio', negotiate=cb['negotiate'])
        milter.opensocket(True)
        print('ready', flush=True)
        if MODE == 'prefork':
            milter.main(workers=2)
        elif MODE == 'inline':
            milter.main(inline=True)
        else:
            milter.main(threads=2)
    print('main returned', flush=True)
    print('children %d' % children(), flush=True)


main()
