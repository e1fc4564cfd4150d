"""TestCtx: unit-test milters against the real engine, in process.

pymilter's TestCtx imitated the milter context in Python.  This one plays
the MTA with libpmcore's client and feeds its bytes to a real libpmcore
session whose handlers are the binding's own, so a test exercises the same
wire code, negotiation, macro handling and action checks as production.
The driver methods (_connect, _envfrom, ..., _feedMsg) and the recorded
results (_reply, _body, _addrcpt, ...) follow pymilter's names.
"""
import io
import ipaddress

import milter
import Milter
from Milter import (ACCEPT, CONTINUE, CURR_ACTS, DISCARD, M_CONNECT, M_DATA,
                    M_ENVFROM, M_ENVRCPT, M_EOH, M_EOM, M_HELO, NOREPLY,
                    P_NR_BODY, P_NR_CONN, P_NR_DATA, P_NR_EOH, P_NR_HDR,
                    P_NR_HELO, P_NR_MAIL, P_NR_RCPT, P_NR_UNKN, REJECT, SKIP,
                    TEMPFAIL)

# Reply bytes back to the callback codes a pymilter test expects.
_CODES = {'c': CONTINUE, 'a': ACCEPT, 'r': REJECT, 't': TEMPFAIL,
          'd': DISCARD, 's': SKIP, '4': TEMPFAIL}
_NR = {'connect': P_NR_CONN, 'helo': P_NR_HELO, 'envfrom': P_NR_MAIL,
       'envrcpt': P_NR_RCPT, 'data': P_NR_DATA, 'header': P_NR_HDR,
       'eoh': P_NR_EOH, 'body': P_NR_BODY, 'unknown': P_NR_UNKN}


# The stages at which Postfix sends well-known macros by default
# (milter_*_macros).  A macro set with _setsymval goes out only at its
# stages, so it is visible from there on, as with a real MTA; names not
# listed here go out at every stage.
_QUEUE_STAGES = (M_ENVFROM, M_ENVRCPT, M_DATA, M_EOH, M_EOM)
_MACRO_STAGES = dict(
    [(n, (M_CONNECT,)) for n in ('j', '_', 'v', 'daemon_name',
                                  'daemon_addr', 'client_addr',
                                  'client_name', 'client_port',
                                  'client_ptr', 'client_resolve',
                                  'client_connections', 'if_name',
                                  'if_addr')] +
    [(n, (M_HELO,)) for n in ('tls_version', 'cipher', 'cipher_bits',
                               'cert_subject', 'cert_issuer')] +
    [(n, (M_ENVFROM,)) for n in ('auth_type', 'auth_authen',
                                  'auth_author', 'auth_ssf', 'mail_addr',
                                  'mail_host', 'mail_mailer')] +
    [(n, (M_ENVRCPT,)) for n in ('rcpt_addr', 'rcpt_host',
                                  'rcpt_mailer')] +
    [('i', _QUEUE_STAGES)])


def _b(s):
    """Bytes for the wire: str as UTF-8 (surrogateescape round-trips what
    the binding decoded), email Header objects through str()."""
    if isinstance(s, bytes):
        return s
    return str(s).encode('utf-8', 'surrogateescape')


def split_message(data):
    """(headers, body) of an RFC 5322 message as an MTA hands it to a
    filter: each header (name, value) with folded lines joined by LF and
    the one space after the colon removed; the body as the bytes after the
    blank line.  libpmcore does the splitting (docs/message-splitting.md),
    so this and the engine's own client never disagree."""
    if isinstance(data, str):
        data = data.encode('utf-8', 'surrogateescape')
    elif not isinstance(data, bytes):
        data = bytes(memoryview(data))  # bytearray and the like
    return milter._split_message(data)


class TestCtx(object):
    """Drive a Milter.factory milter through the real libpmcore engine."""

    default_opts = [CURR_ACTS, 0x1fffff, 0, 0]
    __test__ = False  # not a pytest class, despite the name

    def __init__(self, logfile=None, personality=0):
        # A copy: pymilter shared (and narrowed) one list for all instances.
        self._opts = list(TestCtx.default_opts)
        self._personality = personality
        self._macros = {}
        self._symlist = [None] * 7
        self._reply = None
        self._body = None
        self._bodyreplaced = False
        self._headerschanged = False
        self._envfromchanged = False
        self._sender = None
        self._msg = None
        self._headers = []
        self._addrcpt = []
        self._delrcpt = []
        self._quarantine = None
        self._protocol = 0
        self._actions = 0
        self._stage = None
        self._activity = False
        self._priv = None
        self._conn = None
        self._negotiated = False
        self._result = None

    # -- the context side, for test code ---------------------------------
    def getpriv(self):
        self._sync_priv()
        return self._priv

    def setpriv(self, priv):
        ctx = self._conn.context() if self._conn else None
        if ctx is not None:
            ctx.setpriv(priv)
        self._priv = priv

    def getsymval(self, name):
        if name in self._macros:
            return self._macros[name]
        key = milter._macro_name(name)
        for n, value in self._macros.items():
            if milter._macro_name(n) == key:
                return value
        return None

    def _setsymval(self, name, value):
        self._macros[name] = value

    # -- plumbing ----------------------------------------------------------
    def _sync_priv(self):
        ctx = self._conn.context() if self._conn else None
        if ctx is not None:
            self._priv = ctx.getpriv()

    def _new_conn(self):
        self._conn = milter._TestConn(
            Milter._callbacks(), actions=self._opts[0],
            protocol=self._opts[1], personality=self._personality)
        self._negotiated = False

    def _send_macros(self, stage):
        """Macros go before each event of their stage (_MACRO_STAGES),
        filtered by the milter's macro list for that stage as an MTA
        does."""
        wanted = self._symlist[stage]
        pairs = []
        for name, value in self._macros.items():
            bare = milter._macro_name(name)
            if stage not in _MACRO_STAGES.get(bare, (stage,)):
                continue
            if wanted is not None and bare not in wanted:
                continue
            pairs += [_b(name), _b(value)]
        self._conn.set_macros(stage, pairs)

    def _code(self, event, res):
        self._sync_priv()
        self._result = res
        code, text, mods, ev = res
        self._activity = self._activity or any(m[0] == 'p' for m in mods)
        if code == 'y':
            # Lines come back as setreply() takes them ('%' doubled).
            self._reply = milter._reply_lines(text)
            return REJECT if text[:1] == b'5' else TEMPFAIL
        if code == '':
            # Looked up now: Milter.test rebinds NOREPLY to CONTINUE.
            return Milter.NOREPLY if self._protocol & _NR.get(event, 0) \
                else CONTINUE
        return _CODES.get(code, CONTINUE)

    def _call(self, event, fn, *args):
        try:
            return self._code(event, fn(*args))
        except milter.error:
            self._sync_priv()
            return TEMPFAIL

    # -- pymilter's driver methods ---------------------------------------
    def _negotiate(self):
        if self._conn is None:
            self._new_conn()
        self._stage = -1
        try:
            self._conn.negotiate()
        except milter.error:
            self._sync_priv()
            return REJECT
        self._negotiated = True
        _v, self._actions, self._protocol = self._conn.negotiated()
        for st in range(7):
            syms = self._conn.symlist(st)
            self._symlist[st] = None if syms is None else \
                set(milter._macro_name(n) for n in
                    syms.decode('utf-8', 'surrogateescape').split())
        self._sync_priv()
        return CONTINUE

    def _connect(self, host='localhost', helo='spamrelay', ip='1.2.3.4'):
        if not self._negotiated:
            rc = self._negotiate()
            if rc != CONTINUE:
                return rc
        addr = ipaddress.ip_address(ip)  # ValueError for a bad address
        fam = '4' if addr.version == 4 else '6'
        self._stage = M_CONNECT
        self._send_macros(M_CONNECT)
        rc = self._call('connect', self._conn.connect, host, fam, 1234, ip)
        if rc not in (CONTINUE, NOREPLY, Milter.NOREPLY) or helo is None:
            return rc
        return self._helo(helo)

    def _helo(self, helo):
        self._stage = M_HELO
        self._send_macros(M_HELO)
        return self._call('helo', self._conn.helo, _b(helo))

    def _envfrom(self, *s):
        self._stage = M_ENVFROM
        self._reply = None
        self._sender = s[0] if s else None
        self._send_macros(M_ENVFROM)
        return self._call('envfrom', self._conn.mail, [_b(a) for a in s])

    def _envrcpt(self, *s):
        self._stage = M_ENVRCPT
        self._send_macros(M_ENVRCPT)
        return self._call('envrcpt', self._conn.rcpt, [_b(a) for a in s])

    def _data(self):
        self._stage = M_DATA
        self._send_macros(M_DATA)
        return self._call('data', self._conn.data)

    def _header(self, fld, val):
        self._stage = M_EOH
        self._send_macros(M_EOH)  # Postfix sends them before each header
        self._headers.append((_b(fld), _b(val)))
        return self._call('header', self._conn.header, _b(fld), _b(val))

    def _eoh(self):
        self._stage = M_EOH
        self._send_macros(M_EOH)
        return self._call('eoh', self._conn.eoh)

    def _feed_body(self, fp):
        self._stage = M_EOM
        self._send_macros(M_EOM)
        self._bodyin = b''
        rc = CONTINUE
        while True:
            buf = fp.read(8192)
            if not buf:
                break
            buf = _b(buf)
            self._bodyin += buf
            rc = self._call('body', self._conn.body, buf)
            if rc not in (CONTINUE, NOREPLY):
                break
        return rc

    def _eom(self):
        self._stage = M_EOM
        self._send_macros(M_EOM)
        rc = self._call('eom', self._conn.eom)
        if self._result is not None and self._result[3] == 'eom':
            self._apply(self._result[2])
        return rc

    def _apply(self, mods):
        """Apply the EOM modifications to the message, as the MTA would."""
        newbody = None
        for code, idx, a, b in mods:
            if code == 'h':
                self._headers.append((a, b))
                self._headerschanged = True
            elif code == 'i':
                self._headers.insert(idx, (a, b))
                self._headerschanged = True
            elif code == 'm':
                self._chgheader(a, idx, b)
                self._headerschanged = True
            elif code == 'e':
                self._envfromchanged = True
                self._sender = a.decode('utf-8', 'surrogateescape')
            elif code in '+2':
                self._addrcpt.append((a.decode('utf-8', 'surrogateescape'),
                                      None if b is None else
                                      b.decode('utf-8', 'surrogateescape')))
            elif code == '-':
                self._delrcpt.append(a.decode('utf-8', 'surrogateescape'))
            elif code == 'b':
                newbody = (newbody or b'') + a
            elif code == 'q':
                self._quarantine = a.decode('utf-8', 'surrogateescape')
            elif code == 'p':
                self._activity = True
        if newbody is not None:
            self._bodyreplaced = True
            self._bodyin = newbody
        self._rebuild()

    def _chgheader(self, name, idx, value):
        n = 0
        for i, (h, _v) in enumerate(self._headers):
            if h.lower() == name.lower():
                n += 1
                if n == idx:
                    if value:
                        self._headers[i] = (h, value)
                    else:
                        del self._headers[i]
                    return
        if value:
            self._headers.append((name, value))

    def _rebuild(self):
        out = b''.join(h + b': ' + v.replace(b'\n', b'\n') + b'\n'
                       for h, v in self._headers)
        data = out + b'\n' + getattr(self, '_bodyin', b'')
        self._body = io.BytesIO(data)
        import mime
        self._msg = mime.message_from_file(io.BytesIO(data))

    def _abort(self):
        if self._conn is not None:
            try:
                self._conn.abort()
            except milter.error:
                pass
        self._sync_priv()

    def _close(self):
        if self._conn is not None:
            self._sync_priv()
            try:
                self._conn.quit()
            except milter.error:
                pass
            self._conn = None
        self._negotiated = False

    def _unknown(self, cmd):
        return self._call('unknown', self._conn.unknown, _b(cmd))

    def _feedFile(self, fp, sender='spam@adv.com', rcpt='victim@lamb.com',
                  *rcpts):
        """Run one message from a file: MAIL, RCPTs, DATA, headers, EOH,
        body, EOM; stops at the first verdict other than CONTINUE.  The
        resulting message (with the milter's changes) is left in _body."""
        data = fp.read()
        headers, body = split_message(_b(data))
        self._headers = []
        self._bodyin = body
        self._bodyreplaced = self._headerschanged = False
        self._envfromchanged = False
        self._addrcpt, self._delrcpt = [], []
        self._rebuild()
        rc = self._envfrom('<%s>' % sender)
        if rc not in (CONTINUE, NOREPLY):
            return rc
        for r in (rcpt,) + rcpts:
            rc = self._envrcpt('<%s>' % r)
            if rc not in (CONTINUE, NOREPLY):
                return rc
        rc = self._data()
        if rc not in (CONTINUE, NOREPLY):
            return rc
        for name, value in headers:
            rc = self._header(name, value)
            if rc not in (CONTINUE, NOREPLY):
                return rc
        rc = self._eoh()
        if rc not in (CONTINUE, NOREPLY):
            return rc
        rc = self._feed_body(io.BytesIO(body))
        if rc not in (CONTINUE, NOREPLY, SKIP):
            return rc
        self._bodyin = body
        return self._eom()

    def _feedMsg(self, fname, sender='spam@adv.com', rcpt='victim@lamb.com',
                 *rcpts):
        with open('test/' + fname, 'rb') as fp:
            return self._feedFile(fp, sender, rcpt, *rcpts)


__all__ = ['TestCtx', 'split_message']
