"""A milter process for test_server.py: python3 srv_helper.py MODE SOCKET.
SOCKET is a unix path or a full spec (inet:PORT@HOST).  Prints 'ready' once
listening, and what main() did at the end."""
import os
import signal
import sys
import threading
import time

import milter
import Milter

MODE, SOCK = sys.argv[1], sys.argv[2]
# pool: the slow envfrom holds its worker until another connection's EOM
# was served beside it (or 10 s, when the pool stalled that one).
beside = threading.Event()
# twice: the first main() is stopped once its one connection closed.
first_round = threading.Event()


class M(Milter.Base):
    def envfrom(self, f, *a):
        if MODE == 'exit' and f == '<exit@x>':
            sys.exit(5)
        if f == '<slow@x>':
            print('slow in envfrom', flush=True)
            beside.wait(10)
        return Milter.CONTINUE

    def eom(self):
        beside.set()
        self.addheader('X-Served', MODE)
        return Milter.CONTINUE

    def close(self):
        if MODE == 'twice' and first_round.is_set():
            first_round.clear()
            # From another thread, as a Timer would, but only once the
            # test's connection is done: a timer can fire before a slow
            # client has even connected.
            threading.Thread(target=milter.stop).start()
        return Milter.CONTINUE


class Order(Milter.Base):
    """Checks that its callbacks never overlap and come in protocol order."""

    def __init__(self):
        self.busy = False
        self.bad = []
        self.seq = []

    def _step(self, name):
        if self.busy:
            self.bad.append('overlap')
        self.busy = True
        time.sleep(0.001)  # release the GIL: other threads get to run
        self.seq.append(name)
        self.busy = False
        return Milter.CONTINUE

    def envfrom(self, f, *a):
        self.seq = []
        return self._step('envfrom')

    def envrcpt(self, t, *a):
        return self._step('envrcpt')

    def header(self, n, v):
        return self._step('header')

    def eoh(self):
        return self._step('eoh')

    def body(self, b):
        return self._step('body')

    def eom(self):
        self._step('eom')
        ok = self.seq == ['envfrom', 'envrcpt', 'header', 'header', 'eoh',
                          'body', 'eom'] and not self.bad
        self.addheader('X-Order', 'ok' if ok else repr((self.seq, self.bad)))
        return Milter.CONTINUE


def serve():
    Milter.factory = Order if MODE == 'order' else M
    milter.setconn(SOCK if ':' in SOCK else 'unix:' + SOCK)
    cb = Milter._callbacks()
    for k in ('connect', 'envfrom', 'envrcpt', 'header', 'eoh', 'body',
              'eom', 'abort', 'close'):
        getattr(milter, 'set_%s_callback' % k)(cb[k])
    milter.set_helo_callback(cb['helo'])
    milter.register('srv', negotiate=cb['negotiate'], data=cb['data'],
                    unknown=cb['unknown'])
    milter.opensocket(True)


def main():
    if MODE == 'usr1':
        signal.signal(signal.SIGUSR1,
                      lambda *a: print('usr1 handled', flush=True))
    if MODE == 'twice':
        for i in range(2):
            serve()
            if i == 0:
                first_round.set()
            else:
                threading.Timer(60, milter.stop).start()
            print('ready', flush=True)
            milter.main()
            print('main %d returned' % i, flush=True)
        os._exit(0)
    if MODE == 'inuse':
        def second():
            time.sleep(0.3)
            try:
                milter.main()
            except milter.error as e:
                print('second:', e, flush=True)
            milter.stop()
        threading.Thread(target=second).start()
    serve()
    print('ready', flush=True)
    try:
        r = milter.main(threads=2) if MODE == 'pool' else milter.main()
        print('main returned', r, flush=True)
    except KeyboardInterrupt:
        print('KeyboardInterrupt', flush=True)
        sys.exit(130)


main()
