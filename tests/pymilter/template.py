"""The `template` module pymilter's testsample.py imports (its testTemplate
runs template.myMilter through TestCtx).  pymilter ships its template.py in
no sdist on PyPI, so run_suite.sh supplies this one: a small milter of the
same shape (a Base subclass that keeps a copy of the message and, at end of
message, parses it and adds a Bcc recipient) written for this project."""
import email
import io
import time
from email import policy

import Milter
from Milter.utils import parse_addr


class myMilter(Milter.Base):

    def __init__(self):
        self.id = Milter.uniqueID()
        self.lines = []
        self.fp = None

    def log(self, *msg):
        self.lines.append(' '.join(str(m) for m in msg))

    @Milter.noreply
    def connect(self, IPname, family, hostaddr):
        self.IPname = IPname
        self.receiver = self.getsymval('j')
        self.log('connect from', IPname, hostaddr)
        return Milter.CONTINUE

    def hello(self, heloname):
        if '.' not in heloname:
            self.setreply('550', '5.7.1', 'Use a proper HELO name')
            return Milter.REJECT
        self.H = heloname
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *params):
        self.user = self.getsymval('{auth_authen}')
        self.fromparms = Milter.dictfromlist(params)
        self.canon_from = '@'.join(parse_addr(mailfrom))
        self.R = []
        self.fp = io.BytesIO()
        self.fp.write(b'From %s %s\n' % (self.canon_from.encode(),
                                         time.ctime().encode()))
        return Milter.CONTINUE

    @Milter.noreply
    def envrcpt(self, to, *params):
        self.R.append((to, Milter.dictfromlist(params)))
        return Milter.CONTINUE

    @Milter.noreply
    def header(self, name, hval):
        self.fp.write(b'%s: %s\n' % (name.encode(), hval.encode()))
        return Milter.CONTINUE

    @Milter.noreply
    def eoh(self):
        self.fp.write(b'\n')
        return Milter.CONTINUE

    @Milter.noreply
    def body(self, chunk):
        self.fp.write(chunk)
        return Milter.CONTINUE

    def eom(self):
        self.fp.seek(0)
        msg = email.message_from_binary_file(self.fp, policy=policy.default)
        for part in msg.iter_attachments():
            self.log('attachment', part.get_filename(),
                     part.get_content_type())
        self.addrcpt('<spy@example.com>')
        return Milter.ACCEPT

    def close(self):
        return Milter.CONTINUE

    def abort(self):
        return Milter.CONTINUE
