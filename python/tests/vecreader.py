"""Reader and runner for tests/vectors/*.vec (see tests/vectors/README.md),
through the Python API: the handlers are Python callbacks registered on a
milter._TestConn (raw mode), which feeds the bytes to a real libpmcore
session running the binding's handler table; actions go through
milter.Context methods.

Pending handlers are coroutine callbacks, as in a real async milter: a
handler whose verdict is `pending` returns a coroutine, the binding
answers PMC_PENDING, and a `resume VERDICT` line runs that coroutine
(_TestConn.run_pending, the same code as TestCtx's wait hook), which
returns VERDICT.  `resume pending` leaves it waiting.  `act` lines call
the milter.Context methods between feeds: allowed while a coroutine is
pending, refused with status WRONG_STAGE otherwise.

One binding rule changes a vector's expected log, applied openly here
(see translate()): an invalid verdict (a number, or all_opts outside
negotiate) is a callback error in the binding, answered by the exception
policy (TEMPFAIL with pymilter's 451 4.3.0 text), where the bare C session
answers a plain TEMPFAIL 't'.  Reply texts ('%' doubling, X.0.0 in
multi-line replies) are the core's, and need no translation.
"""
import ipaddress
import re
import socket
import struct

import milter

VERDICTS = {'continue': 0, 'reject': 1, 'discard': 2, 'accept': 3,
            'tempfail': 4, 'noreply': 7, 'skip': 8, 'all_opts': 10,
            'pending': 100}
VALID = {0, 1, 2, 3, 4, 7, 8}
EVENTS = ['negotiate', 'connect', 'helo', 'envfrom', 'envrcpt', 'data',
          'header', 'eoh', 'body', 'eom', 'abort', 'close', 'unknown']
POLICY_TEXT = b'451 4.3.0 pymilter: untrapped exception in vectors'


class VecError(Exception):
    pass


class Word(str):
    """A bare word token (numbers are ints, strings are bytes)."""


_ESC = {'\\': b'\\', '"': b'"', '0': b'\0', 'r': b'\r', 'n': b'\n',
        't': b'\t'}


def tokenize(line, lineno):
    toks = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in ' \t':
            i += 1
            continue
        kv = re.match(r'([A-Za-z_][\w.]*)="', line[i:])
        if kv:  # milter KEY="string": keep the key, parse the string
            i += kv.end() - 1
            sub = tokenize(line[i:], lineno)
            toks.append(('kv', kv.group(1), sub[0]))
            toks.extend(sub[1:])
            return toks
        if c == '"':
            out = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise VecError('line %d: unterminated string' % lineno)
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == '\\':
                    e = line[i + 1:i + 2]
                    if e == 'x':
                        out += bytes([int(line[i + 2:i + 4], 16)])
                        i += 4
                        continue
                    if e not in _ESC:
                        raise VecError('line %d: bad escape' % lineno)
                    out += _ESC[e]
                    i += 2
                    continue
                out += c.encode('utf-8')
                i += 1
            m = re.match(r'\*(\d+)', line[i:])
            if m:
                out = out * int(m.group(1))
                i += m.end()
            toks.append(bytes(out))
            continue
        m = re.match(r'\S+', line[i:])
        w = m.group(0)
        i += m.end()
        if w.startswith('u32:') or w.startswith('u16:'):
            v = int(w[4:], 0)
            toks.append(struct.pack('!L' if w[1] == '3' else '!H', v))
        elif re.fullmatch(r'-?(0x[0-9a-fA-F]+|\d+)', w):
            toks.append(int(w, 0))
        else:
            toks.append(Word(w))
    return toks


class Vector(object):
    def __init__(self, path):
        self.path = path
        self.name = None
        self.config = {}
        self.handlers = 'all'
        self.rules = []        # (event, nth or None, action, args)
        self.segments = [b'']  # input between resume lines
        self.between = []      # ('resume', verdict) or ('act', tokens),
        self.expect = []       # one after each segment but the last
        with open(path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                s = line.strip()
                if not s or s.startswith('#'):
                    continue
                self._line(tokenize(s, lineno), lineno)
        if self.name is None:
            raise VecError('%s: no name line' % path)

    def _line(self, t, lineno):
        kw = t[0]
        if kw == 'name':
            self.name = t[1]
        elif kw == 'covers':
            pass
        elif kw == 'milter':
            for item in t[1:]:
                if isinstance(item, tuple):  # KEY="string"
                    k, v = item[1], item[2]
                else:
                    k, _, v = str(item).partition('=')
                if k == 'handlers':
                    self.handlers = v
                elif k.startswith('symlist.'):
                    self.config.setdefault('symlist', {})[int(k[8:])] = v
                elif k in ('version', 'actions', 'protocol', 'max_packet',
                           'skip_any_event'):
                    self.config[k] = int(v, 0)
                else:
                    raise VecError('line %d: unknown milter key %s'
                                   % (lineno, k))
        elif kw == 'on':
            ev, _, nth = str(t[1]).partition('#')
            if ev not in EVENTS:
                raise VecError('line %d: unknown event %s' % (lineno, ev))
            self.rules.append((ev, int(nth) if nth else None, str(t[2]),
                               t[3:]))
        elif kw == 'send':
            cmd = str(t[1]).encode()
            payload = b''.join(self._bytes(x, lineno) for x in t[2:])
            self.segments[-1] += struct.pack('!L', len(payload) + 1) + \
                cmd + payload
        elif kw == 'raw':
            self.segments[-1] += b''.join(self._bytes(x, lineno)
                                          for x in t[1:])
        elif kw == 'resume':
            self.between.append(('resume', t[1]))
            self.segments.append(b'')
        elif kw == 'act':
            self.between.append(('act', t[1:]))
            self.segments.append(b'')
        elif kw == 'expect':
            self.expect.append(t[1:])
        else:
            raise VecError('line %d: unknown keyword %s' % (lineno, kw))

    @staticmethod
    def _bytes(x, lineno):
        if isinstance(x, bytes):
            return x
        raise VecError('line %d: payload tokens must be strings or u16/u32'
                       % lineno)

    def handler_names(self):
        if self.handlers == 'all':
            return [e for e in EVENTS if e != 'negotiate']
        if self.handlers == 'none':
            return []
        return self.handlers.split(',')



def _verdict(tok):
    return VERDICTS[tok] if isinstance(tok, Word) else int(tok)


def translate(vec):
    """The expected log under the binding's documented rule (module
    docstring): invalid verdicts get the policy's reply text."""
    bad = set()
    for ev, nth, action, args in vec.rules:
        if action == 'return':
            v = _verdict(args[0])
            if v not in VALID and not (ev == 'negotiate' and v == 10):
                bad.add(ev)
    out = []
    last_event = None
    for e in vec.expect:
        if e[0] == 'event':
            last_event = str(e[1])
        if (e[0] == 'reply' and e[1] == 't' and last_event in bad):
            e = [Word('reply'), Word('y'), POLICY_TEXT]
        out.append(list(e))
    return out


def decode_packets(buf, log):
    """Append 'reply ...' entries for each whole packet in buf; returns
    the bytes left over."""
    while len(buf) >= 4:
        n = struct.unpack('!L', buf[:4])[0]
        if len(buf) < 4 + n:
            break
        code, p = chr(buf[4]), buf[5:4 + n]
        buf = buf[4 + n:]
        e = ['reply', code]
        if code == 'O':
            v, a, pr = struct.unpack('!LLL', p[:12])
            e += [v, a, pr]
            rest = p[12:]
            while len(rest) >= 4:
                st = struct.unpack('!L', rest[:4])[0]
                lst, _, rest = rest[4:].partition(b'\0')
                e += [st, lst]
        elif code in 'ihm' and code != 'h':
            idx = struct.unpack('!L', p[:4])[0]
            name, value = p[4:].split(b'\0')[:2]
            e += [idx, name, value]
        elif code == 'h':
            e += p.split(b'\0')[:2]
        elif code in 'e2':
            parts = p.split(b'\0')
            e += [parts[0]] + ([parts[1]] if len(parts) > 2 else [])
        elif code in 'yq+-':
            e.append(p[:-1] if p.endswith(b'\0') else p)
        elif code == 'b':
            e.append(p)
        log.append(e)
    return buf


class Run(object):
    """One run of a vector with one way of cutting the input."""

    def __init__(self, vec):
        self.vec = vec
        self.log = []
        self.pending = b''
        self.calls = {}
        self.conn = None
        self.resume_verdict = 0

    def drain(self):
        if self.conn is not None:
            self.pending = decode_packets(self.pending + self.conn.output(),
                                          self.log)

    def _args_log(self, ev, args):
        if ev == 'negotiate':
            opts = args[0]
            return [opts[4], opts[5], opts[6]]
        if ev == 'connect':
            host, fam, addr = args
            host = host.encode('utf-8', 'surrogateescape')
            if fam == socket.AF_INET:
                return [host, b'4', addr[1], addr[0].encode()]
            if fam == socket.AF_INET6:
                return [host, b'6', addr[1], addr[0].encode()]
            if fam == socket.AF_UNIX:
                return [host, b'L', 0,
                        addr.encode('utf-8', 'surrogateescape')]
            return [host, b'U', 0, b'']
        out = []
        for a in args:
            if isinstance(a, str):
                a = a.encode('utf-8', 'surrogateescape')
            out.append(a)
        return out

    def callback(self, ev):
        def cb(ctx, *args):
            self.drain()
            self.log.append(['event', ev] + self._args_log(ev, args))
            k = self.calls[ev] = self.calls.get(ev, 0) + 1
            verdict = 0
            for rev, nth, action, targs in self.vec.rules:
                if rev != ev or (nth is not None and nth != k):
                    continue
                if action == 'return':
                    verdict = _verdict(targs[0])
                else:
                    self.action(ctx, ev, action, targs, args)
            if verdict == VERDICTS['pending']:
                return self.later()
            return verdict
        return cb

    async def later(self):
        # Runs only when a resume line asks: its verdict is that line's.
        return self.resume_verdict

    def between(self, step):
        kind, arg = step
        if kind == 'resume':
            if arg == 'pending' and self.conn.pending():
                return  # the coroutine keeps waiting
            self.resume_verdict = _verdict(arg)
            st = self.conn.run_pending()
            if st == 'PENDING':
                self.log.append(['fail', 'resume', Word('PENDING')])
        else:
            ctx = self.conn.context()
            if ctx is None:
                self.log.append(['runner-error', arg[0], b'no context'])
                return
            self.action(ctx, None, str(arg[0]), arg[1:], None)

    def action(self, ctx, ev, action, a, args):
        def opt(x):
            return None if x == '-' else x
        try:
            if action == 'setreply':
                lines = [] if opt(a[2]) is None else [a[2]]
                ctx.setreply(a[0], opt(a[1]), *lines)
            elif action == 'setmlreply':
                ctx.setreply(a[0], opt(a[1]), *a[2:])
            elif action == 'addheader':
                ctx.addheader(a[0], a[1])
            elif action == 'insheader':
                ctx.addheader(a[1], a[2], a[0])
            elif action == 'chgheader':
                ctx.chgheader(a[0], a[1], a[2])
            elif action == 'addrcpt':
                ctx.addrcpt(a[0])
            elif action == 'addrcpt_par':
                # None would mean plain ADDRCPT in pymilter's API; the
                # vector's NULL args is the core's "no parameters".
                ctx.addrcpt(a[0], b'' if opt(a[1]) is None else a[1])
            elif action == 'delrcpt':
                ctx.delrcpt(a[0])
            elif action == 'chgfrom':
                ctx.chgfrom(a[0], opt(a[1]))
            elif action == 'replacebody':
                ctx.replacebody(a[0])
            elif action == 'quarantine':
                ctx.quarantine(a[0])
            elif action == 'progress':
                ctx.progress()
            elif action == 'getsymval':
                v = ctx.getsymval(a[0].decode('utf-8', 'surrogateescape'))
                self.log.append(['symval', a[0],
                                 Word('none') if v is None else
                                 v.encode('utf-8', 'surrogateescape')])
            elif action == 'setsymlist':
                ctx.setsymlist(a[0], a[1])
            elif action == 'negotiate':
                opts = args[0]
                opts[7], opts[0], opts[1] = a[0], a[1], a[2]
            else:
                raise VecError('unknown action %s' % action)
        except milter.error as e:
            status = getattr(e, 'status', None)
            if status is None:
                raise
            self.log.append(['fail', action, Word(status)])

    def run(self, cuts):
        """cuts: for each segment, a list of byte strings to feed."""
        vec = self.vec
        names = vec.handler_names()
        cbs = dict((ev, self.callback(ev)) for ev in names)
        self.conn = milter._TestConn(cbs, session=vec.config,
                                     handlers=names, client=False,
                                     raw_negotiate=True)
        for k, pieces in enumerate(cuts):
            for p in pieces:
                if self.conn.closed():
                    break
                self.conn.feed(p)
                self.drain()
            if k < len(vec.between) and not self.conn.closed():
                self.between(vec.between[k])
                self.drain()
        if not self.conn.closed():
            self.conn.eof()
        self.drain()
        err = self.conn.error()
        if err is None:
            self.log.append(['end', 'ok'])
        else:
            self.log.append(['end', 'error', err[0], err[1]])
        self.conn = None
        return self.log


def same(got, want):
    """Token by token: numbers numerically, strings by bytes, words
    exactly; a bytes/word mismatch compares the text."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if isinstance(g, (bytes, bytearray)) and isinstance(w, str):
            g = g.decode('latin-1')
        if isinstance(w, (bytes, bytearray)) and isinstance(g, str):
            w = w.decode('latin-1')
        if isinstance(g, int) and isinstance(w, int):
            if g != w:
                return False
        elif str(g) != str(w) if not isinstance(g, bytes) else g != w:
            return False
    return True


def normalize(entry):
    """Text tokens for comparison; IPv6 addresses of connect events in
    canonical form (the binding formats the binary address)."""
    e = [x.decode('latin-1') if isinstance(x, (bytes, bytearray)) else x
         for x in entry]
    e = [str(x) if not isinstance(x, int) else x for x in e]
    if len(e) > 1 and e[0] == 'reply':
        e[1] = str(e[1])  # reply code '2' reads as a number
    if len(e) >= 6 and e[0] == 'event' and e[1] == 'connect' and \
            e[3] == '6':
        try:
            e[5] = str(ipaddress.ip_address(e[5]))
        except ValueError:
            pass
    return e


def compare(got, want):
    g = [normalize(x) for x in got]
    w = [normalize(x) for x in want]
    if g == w:
        return None
    lines = []
    for i in range(max(len(g), len(w))):
        a = g[i] if i < len(g) else None
        b = w[i] if i < len(w) else None
        mark = '  ' if a == b else '!!'
        lines.append('%s got  %r\n   want %r' % (mark, a, b))
    return '\n'.join(lines)


def cuttings(vec, limit=4096):
    """(label, cuts) pairs: whole, byte by byte, and every split point of
    every segment for vectors under the size limit."""
    segs = vec.segments
    yield 'whole', [[s] for s in segs]
    yield 'bytes', [[s[i:i + 1] for i in range(len(s))] for s in segs]
    if sum(len(s) for s in segs) < limit:
        for k, s in enumerate(segs):
            for i in range(1, len(s)):
                cuts = [[x] for x in segs]
                cuts[k] = [s[:i], s[i:]]
                yield 'split seg %d at %d' % (k, i), cuts
