"""Milter.test.TestBase: pymilter's older test mixin (deprecated there too).

Mix it in before a Base subclass: the action methods are replaced by ones
that record what the milter did, and feedMsg/feedFile run a message through
the milter's methods directly.  New tests should prefer Milter.testctx,
which drives the real engine.
"""
import io

import Milter
import mime
from Milter.testctx import split_message

# As in pymilter: under TestBase, @noreply methods return CONTINUE.
Milter.NOREPLY = Milter.CONTINUE


class TestBase(object):

    def __init__(self, logfile='test/milter.log'):
        self._protocol = 0
        self.logfp = open(logfile, 'a')
        self._delrcpt = []
        self._addrcpt = []
        self._macros = {}
        self._body = None
        self._bodyreplaced = False
        self._headerschanged = False
        self._reply = None
        self._sender = None
        self._symlist = [None] * 7
        self._msg = None

    def log(self, *msg):
        for i in msg:
            print(i, file=self.logfp, end=' ')
        print(file=self.logfp)

    def setsymval(self, name, val):
        self._macros[name] = val

    def getsymval(self, name):
        return self._macros.get(name)

    def replacebody(self, chunk):
        if self._body is None:
            raise IOError('replacebody not called from eom()')
        if not self._bodyreplaced:
            self._bodyreplaced = True
            self._body = io.BytesIO()
        self._body.write(chunk if isinstance(chunk, bytes) else
                         chunk.encode('utf-8', 'surrogateescape'))

    def chgfrom(self, sender, params=None):
        self._sender = sender

    def quarantine(self, reason):
        # pymilter's TestBase does `raise NotImplemented`, which Python turns
        # into this TypeError; tests written against it may expect that.
        raise TypeError('exceptions must derive from BaseException')

    def progress(self):
        pass

    def chgheader(self, field, idx, value):
        if self._msg is None:
            raise IOError('chgheader not called from eom()')
        self._headerschanged = True
        vals = self._msg.get_all(field, [])
        del self._msg[field]
        for i, v in enumerate(vals, 1):
            if i != idx:
                self._msg[field] = v
            elif value:
                self._msg[field] = value
        if idx > len(vals) and value:
            self._msg[field] = value

    def addheader(self, field, value, idx=-1):
        if self._msg is None:
            raise IOError('addheader not called from eom()')
        self._headerschanged = True
        self._msg[field] = value

    def delrcpt(self, rcpt):
        self._delrcpt.append(rcpt)

    def addrcpt(self, rcpt):
        self._addrcpt.append(rcpt)

    def setreply(self, rcode, xcode=None, msg=None, *ml):
        self._reply = (rcode, xcode, msg) + ml

    def setsymlist(self, stage, macros):
        self._symlist[stage] = macros

    def connect(self, host='localhost', helo='spamrelay', ip='1.2.3.4'):
        self._body = None
        self._bodyreplaced = False
        self._setctx(None)
        self.negotiate([Milter.CURR_ACTS, ~0, 0, 0])
        rc = super(TestBase, self).connect(host, 1, (ip, 1234))
        if rc != Milter.CONTINUE:
            return rc
        return self.hello(helo)

    def feedFile(self, fp, sender='spam@adv.com', rcpt='victim@lamb.com',
                 *rcpts):
        # Per message, as pymilter's: a test that feeds several messages to
        # one milter asserts each message's own changes, reply and sender.
        self._body = None
        self._bodyreplaced = False
        self._headerschanged = False
        self._reply = None
        self._sender = '<%s>' % sender
        data = fp.read()
        if isinstance(data, str):
            data = data.encode('utf-8', 'surrogateescape')
        self._msg = mime.message_from_file(io.BytesIO(data))
        msg, self._msg = self._msg, None
        headers, body = split_message(data)
        rc = self.envfrom(self._sender)
        if rc != Milter.CONTINUE:
            return rc
        for r in (rcpt,) + rcpts:
            rc = self.envrcpt('<%s>' % r)
            if rc != Milter.CONTINUE:
                return rc
        rc = self.data()
        if rc != Milter.CONTINUE:
            return rc
        for name, value in headers:
            rc = self.header_bytes(name.decode('utf-8', 'surrogateescape'),
                                   value)
            if rc != Milter.CONTINUE:
                return rc
        rc = self.eoh()
        if rc != Milter.CONTINUE:
            return rc
        bfp = io.BytesIO(body)
        while True:
            buf = bfp.read(8192)
            if not buf:
                break
            rc = self.body(buf)
            if rc != Milter.CONTINUE:
                return rc
        self._msg = msg
        self._body = io.BytesIO()
        rc = self.eom()
        if self._bodyreplaced:
            body = self._body.getvalue()
        self._body = io.BytesIO(msg.as_bytes().split(b'\n\n', 1)[0] +
                                b'\n\n' + body)
        self.close()
        self._close()
        return rc

    def _close(self):
        if self.logfp:
            self.logfp.close()
            self.logfp = None

    def feedMsg(self, fname, sender='spam@adv.com', rcpt='victim@lamb.com',
                *rcpts):
        with open('test/' + fname, 'rb') as fp:
            return self.feedFile(fp, sender, rcpt, *rcpts)
