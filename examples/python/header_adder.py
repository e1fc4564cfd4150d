"""Template: add a header to every message.

Run:  python3 header_adder.py unix:/run/milter/header.sock
Only eom is overridden, so the MTA is asked not to send (and not to wait
for) every other step.
"""
import sys

import Milter


class HeaderAdder(Milter.Base):
    """Stamps each message with X-Filtered-By and the client's address."""

    def __init__(self):
        self.client = None

    @Milter.noreply
    def connect(self, hostname, family, hostaddr):
        # hostaddr is (ip, port) for IPv4, (ip, port, 0, 0) for IPv6, a
        # path for unix sockets, None when unknown.
        self.client = hostaddr[0] if isinstance(hostaddr, tuple) else None
        return Milter.CONTINUE

    def eom(self):
        self.addheader('X-Filtered-By', 'header_adder')
        if self.client:
            self.addheader('X-Client-Addr', self.client)
        return Milter.CONTINUE


def main(argv):
    Milter.factory = HeaderAdder
    Milter.runmilter('header_adder', argv[1] if len(argv) > 1 else
                     'inet:8894@127.0.0.1', timeout=600)


if __name__ == '__main__':
    main(sys.argv)
