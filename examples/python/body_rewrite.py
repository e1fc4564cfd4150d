"""Template: rewrite the message body (here: mask card-like numbers).

Run:  python3 body_rewrite.py unix:/run/milter/body.sock
"""
import re
import sys

import Milter

CARD = re.compile(rb'\b(?:\d[ -]?){13,16}\b')


class BodyRewrite(Milter.Base):
    """Collects the body chunks and replaces the body at eom if needed."""

    def __init__(self):
        self.chunks = []

    def envfrom(self, sender, *params):
        self.chunks = []  # one object serves every message of a connection
        return Milter.CONTINUE

    def body(self, chunk):
        self.chunks.append(chunk)  # bytes, exactly as the MTA sent them
        return Milter.CONTINUE

    def eom(self):
        body = b''.join(self.chunks)
        new = CARD.sub(b'[card number removed]', body)
        if new != body:
            self.replacebody(new)
            self.chgheader('X-Body-Rewritten', 1, 'yes')
        return Milter.CONTINUE


def main(argv):
    Milter.factory = BodyRewrite
    Milter.runmilter('body_rewrite', argv[1] if len(argv) > 1 else
                     'inet:8896@127.0.0.1', timeout=600)


if __name__ == '__main__':
    main(sys.argv)
