"""The trivial milter of `make bench-python`: every callback overridden and
answering CONTINUE, header `X-PMC-Bench: yes` added at end of message.
Runs unchanged on our package and on pymilter 1.0.5 (libmilter).

    python trivial_milter.py SOCKETSPEC [--noreply] [--workers N]

--noreply   @Milter.noreply on every step but EOM (the MTA need not wait
            for those replies)
--workers N our prefork model (Milter.runmilter(workers=N)); not pymilter
--inline    our callbacks on the event loop's thread
            (Milter.runmilter(inline=True)); not pymilter
"""
import argparse
import signal
import sys

import Milter

# Sendmail's default-looking name; the benchmark never sees it on the wire.
NAME = 'pmc-bench'


class Trivial(Milter.Base):

    def connect(self, hostname, family, hostaddr):
        return Milter.CONTINUE

    def hello(self, heloname):
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *params):
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        return Milter.CONTINUE

    def data(self):
        return Milter.CONTINUE

    def header(self, name, value):
        return Milter.CONTINUE

    def eoh(self):
        return Milter.CONTINUE

    def body(self, chunk):
        return Milter.CONTINUE

    def unknown(self, cmd):
        return Milter.CONTINUE

    def eom(self):
        self.addheader('X-PMC-Bench', 'yes')
        return Milter.CONTINUE

    def abort(self):
        return Milter.CONTINUE

    def close(self):
        return Milter.CONTINUE


class TrivialNoReply(Trivial):
    connect = Milter.noreply(Trivial.connect)
    hello = Milter.noreply(Trivial.hello)
    envfrom = Milter.noreply(Trivial.envfrom)
    envrcpt = Milter.noreply(Trivial.envrcpt)
    data = Milter.noreply(Trivial.data)
    header = Milter.noreply(Trivial.header)
    eoh = Milter.noreply(Trivial.eoh)
    body = Milter.noreply(Trivial.body)
    unknown = Milter.noreply(Trivial.unknown)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('spec')
    ap.add_argument('--noreply', action='store_true')
    ap.add_argument('--workers', type=int, default=0)
    ap.add_argument('--inline', action='store_true')
    a = ap.parse_args()
    Milter.factory = TrivialNoReply if a.noreply else Trivial
    # SIGTERM ends the run on both implementations (benchlib also kills the
    # process group); make it immediate rather than libmilter's 5 s tick.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    kw = {'workers': a.workers} if a.workers else {}
    if a.inline:
        kw['inline'] = True
    Milter.runmilter(NAME, a.spec, **kw)


if __name__ == '__main__':
    main()
