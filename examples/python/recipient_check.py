"""Template: refuse recipients outside the local domains.

Run:  python3 recipient_check.py unix:/run/milter/rcpt.sock
"""
import sys

import Milter
from Milter.utils import parse_addr

LOCAL_DOMAINS = {'example.com', 'example.org'}


class RecipientCheck(Milter.Base):
    """Rejects RCPT TO for domains we do not serve; counts the good ones."""

    def __init__(self):
        self.accepted = []

    def envfrom(self, mailfrom, *params):
        # One connection may carry several messages: count per message.
        self.accepted = []
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        # Arguments arrive as str (decoded with surrogateescape).
        parts = parse_addr(to)
        domain = parts[1].lower() if len(parts) > 1 else ''
        if domain not in LOCAL_DOMAINS:
            self.setreply('550', '5.7.1', 'relaying to %s denied' % domain)
            return Milter.REJECT
        self.accepted.append(to)
        return Milter.CONTINUE

    def eom(self):
        self.addheader('X-Local-Recipients', str(len(self.accepted)))
        return Milter.CONTINUE


def main(argv):
    Milter.factory = RecipientCheck
    Milter.runmilter('recipient_check', argv[1] if len(argv) > 1 else
                     'inet:8895@127.0.0.1', timeout=600)


if __name__ == '__main__':
    main(sys.argv)
