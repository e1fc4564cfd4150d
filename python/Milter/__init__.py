"""Milter: the object-oriented layer over the `milter` module.

Compatible with pymilter's ``Milter`` package (spec/pymilter-api.md section
3): a factory makes one ``Base`` subclass object per connection, its methods
are the callbacks, and which methods are overridden or decorated decides
what is negotiated with the MTA.  The engine underneath is libpmcore.
"""
import inspect
import re
import threading
from functools import wraps
from types import MethodType

import milter
from milter import *  # noqa: F401,F403 - pymilter re-exports every name
from milter import (ACCEPT, ADDHDRS, ADDRCPT, ADDRCPT_PAR, ALL_OPTS,
                    CHGFROM, CHGHDRS, CONTINUE, CURR_ACTS, DELRCPT, M_CONNECT,
                    M_DATA, M_ENVFROM, M_ENVRCPT, M_EOH, M_EOM, M_HELO,
                    MODBODY, P_HDR_LEADSPC, P_NOBODY, P_NOCONNECT, P_NODATA,
                    P_NOEOH, P_NOHDRS, P_NOHELO, P_NOMAIL, P_NORCPT,
                    P_NOUNKNOWN, P_NR_BODY, P_NR_CONN, P_NR_DATA, P_NR_EOH,
                    P_NR_HDR, P_NR_HELO, P_NR_MAIL, P_NR_RCPT, P_NR_UNKN,
                    P_RCPT_REJ, QUARANTINE, SETSYMLIST)

__version__ = '1.0.6'

_seq = 0
_seq_lock = threading.Lock()


def uniqueID():
    """A process-wide counter: 1, 2, 3, ..."""
    global _seq
    with _seq_lock:
        _seq += 1
        return _seq


# Optional callbacks: method name -> (no-reply bit, do-not-send bit).
OPTIONAL_CALLBACKS = {
    'connect': (P_NR_CONN, P_NOCONNECT),
    'hello': (P_NR_HELO, P_NOHELO),
    'envfrom': (P_NR_MAIL, P_NOMAIL),
    'envrcpt': (P_NR_RCPT, P_NORCPT),
    'data': (P_NR_DATA, P_NODATA),
    'unknown': (P_NR_UNKN, P_NOUNKNOWN),
    'eoh': (P_NR_EOH, P_NOEOH),
    'body': (P_NR_BODY, P_NOBODY),
    'header': (P_NR_HDR, P_NOHDRS),
}

# Methods that may carry a @symlist, and the macro stage of each.
MACRO_CALLBACKS = {
    'connect': M_CONNECT, 'hello': M_HELO, 'envfrom': M_ENVFROM,
    'envrcpt': M_ENVRCPT, 'data': M_DATA, 'eom': M_EOM, 'eoh': M_EOH,
}

R = re.compile(r'%+')


def decode_mask(bits, names):
    """Names (from `names`) of the milter constants set in `bits`; bits no
    name covers are appended as one hex string."""
    out = []
    for name in names:
        v = getattr(milter, name)
        if bits & v:
            out.append(name)
            bits &= ~v
    if bits:
        out.append(hex(bits))
    return out


def enable_protocols(klass, mask):
    """Class decorator helper: let the MTA keep the protocol bits in mask."""
    klass._protocol_mask = klass.protocol_mask() & ~mask
    return klass


def rejected_recipients(klass):
    """Class decorator: also call envrcpt for recipients the MTA rejected."""
    return enable_protocols(klass, P_RCPT_REJ)


def header_leading_space(klass):
    """Class decorator: header values keep their leading space."""
    return enable_protocols(klass, P_HDR_LEADSPC)


def _optional(func, which):
    name = func.__name__
    if name not in OPTIONAL_CALLBACKS:
        raise ValueError('@%s applied to non-optional method: %s'
                         % (which, name))
    return name, OPTIONAL_CALLBACKS[name]


def _then(rc, check, *extra):
    """check(*extra, rc) now, or, when rc is awaitable (an async def
    callback), a coroutine that awaits it and then checks: the engine
    awaits that.  An int (the usual result) is never awaitable: it skips
    inspect.isawaitable, whose ABC check cost more than the callback."""
    if rc.__class__ is not int and inspect.isawaitable(rc):
        async def checked():
            return check(*extra, await rc)
        return checked()
    return check(*extra, rc)


def nocallback(func):
    """The MTA need not send this event (the method must return CONTINUE)."""
    name, (nr, no) = _optional(func, 'nocallback')
    # Marks the function it is given too, as pymilter does: a class that
    # reuses that function elsewhere (nocallback(Base.data)) sees the mark.
    func.milter_protocol = no

    def check(rc):
        if rc != CONTINUE:
            raise RuntimeError('%s return code must be CONTINUE with '
                               '@nocallback' % name)
        return CONTINUE

    @wraps(func)
    def wrapper(self, *args):
        rc = func(self, *args)
        if rc.__class__ is int:  # check() inline: one frame less per event
            if rc != CONTINUE:
                raise RuntimeError('%s return code must be CONTINUE with '
                                   '@nocallback' % name)
            return CONTINUE
        return _then(rc, check)
    wrapper.milter_protocol = no
    return wrapper


def noreply(func):
    """The MTA need not wait for this event's reply, when it agrees."""
    name, (nr, no) = _optional(func, 'noreply')

    # The rule (with the event's NR bit in self._protocol, CONTINUE is
    # required and NOREPLY given) is milter._noreply's.  The milter module runs this wrapper's body
    # itself when the method it calls is one (it reads func, nr, name and
    # check from the closure): keep the body and those names in step with
    # call_noreply in dispatch.c.
    def check(self, rc):
        return milter._noreply(self, rc, nr, name)

    @wraps(func)
    def wrapper(self, *args):
        rc = func(self, *args)
        if rc.__class__ is int:  # check() inline: one frame less per event
            return milter._noreply(self, rc, nr, name)
        return _then(rc, check, self)
    wrapper.milter_protocol = nr
    milter._noreply_mark(wrapper)
    return wrapper


def decode(strategy):
    """How envfrom/envrcpt/header get their bytes: 'bytes' (raw), 'strict',
    'ignore', 'replace' or the default 'surrogateescape'."""
    def set_strategy(func):
        func.error_strategy = strategy
        return func
    return set_strategy


def symlist(*syms):
    """Ask the MTA for these macros (at most 5) at this method's stage."""
    if len(syms) > 5:
        raise ValueError('@symlist limited to 5 macros by MTA: %s'
                         % ' '.join(syms))

    def setsyms(func):
        if func.__name__ not in MACRO_CALLBACKS:
            raise ValueError('@symlist applied to non-symlist method: %s'
                             % func.__name__)
        func._symlist = syms
        return func
    return setsyms


class DisabledAction(RuntimeError):
    """An action whose flag was not negotiated."""


class Base(object):
    """The per-connection milter object: override the callbacks you need."""

    def _setctx(self, ctx):
        self._ctx = ctx
        self._actions = CURR_ACTS
        self._protocol = 0
        if ctx:
            ctx.setpriv(self)

    def log(self, *msg):
        pass

    @nocallback
    def connect(self, hostname, family, hostaddr):
        return CONTINUE

    @nocallback
    def hello(self, hostname):
        return CONTINUE

    @nocallback
    def envfrom(self, f, *s):
        return CONTINUE

    @nocallback
    def envrcpt(self, to, *s):
        return CONTINUE

    @nocallback
    def data(self):
        return CONTINUE

    @nocallback
    def header(self, field, value):
        return CONTINUE

    @nocallback
    def eoh(self):
        return CONTINUE

    @nocallback
    def body(self, blk):
        return CONTINUE

    @nocallback
    def unknown(self, cmd):
        return CONTINUE

    def eom(self):
        return CONTINUE

    def abort(self):
        return CONTINUE

    def close(self):
        return CONTINUE

    # The *_bytes methods apply the method's @decode strategy: 'bytes'
    # passes the bytes on (and header_bytes then puts header in its own
    # place, so later headers go straight in), any other decodes them as
    # bytes.decode('utf-8', strategy) does, keeping the bytes where that
    # raises UnicodeDecodeError ('strict').  The milter module does it, for
    # these methods and for its own calls that skip them.
    def envfrom_bytes(self, *b):
        return milter._call_decoded(self, 'envfrom', *b)

    def envrcpt_bytes(self, *b):
        return milter._call_decoded(self, 'envrcpt', *b)

    def header_bytes(self, fld, val):
        return milter._call_decoded(self, 'header', fld, val)

    @classmethod
    def protocol_mask(klass):
        """The protocol bits to clear from the MTA's offer (cached)."""
        try:
            return klass._protocol_mask
        except AttributeError:
            p = P_RCPT_REJ | P_HDR_LEADSPC
            for name, (nr, no) in OPTIONAL_CALLBACKS.items():
                kept = getattr(getattr(klass, name), 'milter_protocol', 0)
                p |= (nr | no) & ~kept
            klass._protocol_mask = p
            return p

    def negotiate(self, opts):
        try:
            self._actions, p, f1, f2 = opts
            for name, stage in MACRO_CALLBACKS.items():
                # A bound method's attributes are its function's; asked
                # of the function, a missing one costs no AttributeError
                # made and dropped (seven a connection: about a fifth of a
                # one-message connection's instructions).
                f = getattr(self, name, None)
                if type(f) is MethodType:
                    f = f.__func__
                syms = getattr(f, '_symlist', None)
                if syms:
                    self.setsymlist(stage, *syms)
            opts[1] = self._protocol = p & ~self.protocol_mask()
            opts[2] = 0
            opts[3] = 0
            return CONTINUE
        except Exception:
            return ALL_OPTS

    def getsymval(self, sym):
        return self._ctx.getsymval(sym)

    def setreply(self, rcode, xcode=None, msg=None, *ml):
        for line in (msg,) + ml:
            for run in R.findall(line):
                if len(run) % 2:
                    raise ValueError("'%' must be doubled: " + line)
        return self._ctx.setreply(rcode, xcode, msg, *ml)

    def _need(self, flag, name):
        if not self._actions & flag:
            raise DisabledAction(name)

    def setsymlist(self, stage, *macros):
        self._need(SETSYMLIST, 'SETSYMLIST')
        if len(macros) > 5:
            raise ValueError('setsymlist limited to 5 macros by MTA')
        parts = []
        for m in macros:
            if isinstance(m, str):
                m = m.encode('utf-8', 'surrogateescape')
            parts.extend(m.split(b' '))
        return self._ctx.setsymlist(stage, b' '.join(parts))

    def addheader(self, field, value, idx=-1):
        self._need(ADDHDRS, 'ADDHDRS')
        return self._ctx.addheader(field, value, idx)

    def chgheader(self, field, idx, value):
        self._need(CHGHDRS, 'CHGHDRS')
        return self._ctx.chgheader(field, idx, value)

    def addrcpt(self, rcpt, params=None):
        self._need(ADDRCPT, 'ADDRCPT')
        if params:
            self._need(ADDRCPT_PAR, 'ADDRCPT_PAR')
        return self._ctx.addrcpt(rcpt, params)

    def delrcpt(self, rcpt):
        self._need(DELRCPT, 'DELRCPT')
        return self._ctx.delrcpt(rcpt)

    def replacebody(self, body):
        self._need(MODBODY, 'MODBODY')
        return self._ctx.replacebody(body)

    def chgfrom(self, sender, params=None):
        self._need(CHGFROM, 'CHGFROM')
        return self._ctx.chgfrom(sender, params)

    def quarantine(self, reason):
        self._need(QUARANTINE, 'QUARANTINE')
        return self._ctx.quarantine(reason)

    def progress(self):
        return self._ctx.progress()


class Milter(Base):
    """pymilter's compatibility class: logs every callback to stdout."""

    def log(self, *msg):
        print('Milter:', end=None)
        for i in msg:
            print(i, end=None)

    @noreply
    def connect(self, hostname, family, hostaddr):
        self.log('connect from %s' % hostname)
        return CONTINUE

    @noreply
    def hello(self, hostname):
        self.log('hello from %s' % hostname)
        return CONTINUE

    @noreply
    def envfrom(self, f, *s):
        self.log('mail from', f, s)
        return CONTINUE

    @noreply
    def envrcpt(self, to, *s):
        self.log('rcpt to', to, s)
        return CONTINUE

    @noreply
    def header(self, field, value):
        self.log('%s: %s' % (field, value))
        return CONTINUE

    @noreply
    def eoh(self):
        self.log('eoh')
        return CONTINUE

    def eom(self):
        self.log('eom')
        return CONTINUE

    def abort(self):
        self.log('abort')
        return CONTINUE

    def close(self):
        self.log('close')
        return CONTINUE


factory = Milter


def negotiate_callback(ctx, opts):
    m = factory()
    m._setctx(ctx)
    return m.negotiate(opts)


def close_callback(ctx):
    m = ctx.getpriv()
    if not m:
        return CONTINUE
    try:
        rc = m.close()
    except BaseException:
        m._setctx(None)
        raise
    if rc.__class__ is not int and inspect.isawaitable(rc):  # as in _then
        # async close: it runs after this callback; the cycle is broken
        # when it is done.
        async def closing():
            try:
                return await rc
            finally:
                m._setctx(None)
        return closing()
    m._setctx(None)  # break the m._ctx <-> ctx.priv cycle
    return rc


def dictfromlist(args):
    """{NAME: value} for the 'name=value' items of args."""
    return dict((k.upper(), v) for k, _, v in
                (a.partition('=') for a in args if a.find('=') > 0))


def param2dict(items):
    """Every item split at its first '='; valueless items map to None."""
    out = {}
    for a in items:
        k, eq, v = a.partition('=')
        out[k.upper()] = v if eq else None
    return out


def envcallback(c, args):
    """Call c(address, *plain_params, **{KEY: value})."""
    pos = [a for a in args[1:] if a.find('=') <= 0]
    return c(args[0], *pos, **dictfromlist(args[1:]))


def _std(method, via=None):
    """Mark a callback as "ctx.getpriv().<method>(*args)" (through Base's
    <method>_bytes when `via` names the method that one calls): the milter
    module then calls the Milter object's method itself, skipping this
    function's frame and getpriv (dispatch.c), whenever the context's priv
    is set; without one, the function runs and decides as before."""
    def mark(f):
        f._milter_std = (method, getattr(Base, method) if via else None,
                         via)
        return f
    return mark


@_std('connect')
def connect_callback(ctx, hostname, family, hostaddr, nr_mask=P_NR_CONN):
    m = ctx.getpriv()
    if not m:
        # No negotiation for this connection (QUIT_NC reuse): a new object.
        m = factory()
        m._setctx(ctx)
    return m.connect(hostname, family, hostaddr)


def _callbacks():
    """The table runmilter installs (also used by Milter.testctx)."""
    return {
        'negotiate': negotiate_callback,
        'connect': connect_callback,
        'helo': _std('hello')(lambda ctx, host: ctx.getpriv().hello(host)),
        'envfrom': _std('envfrom_bytes', 'envfrom')(
            lambda ctx, *b: ctx.getpriv().envfrom_bytes(*b)),
        'envrcpt': _std('envrcpt_bytes', 'envrcpt')(
            lambda ctx, *b: ctx.getpriv().envrcpt_bytes(*b)),
        'header': _std('header_bytes', 'header')(
            lambda ctx, f, v: ctx.getpriv().header_bytes(f, v)),
        'eoh': _std('eoh')(lambda ctx: ctx.getpriv().eoh()),
        'body': _std('body')(lambda ctx, chunk: ctx.getpriv().body(chunk)),
        'eom': _std('eom')(lambda ctx: ctx.getpriv().eom()),
        'abort': _std('abort')(lambda ctx: ctx.getpriv().abort()),
        'close': close_callback,
        'data': _std('data')(lambda ctx: ctx.getpriv().data()),
        'unknown': _std('unknown')(
            lambda ctx, cmd: ctx.getpriv().unknown(cmd)),
    }


def runmilter(name, socketname, timeout=0, rmsock=True, workers=0,
              inline=False):
    """Register the Milter callbacks and serve on socketname until stopped.
    workers > 0 serves from that many prefork worker processes
    (milter.main(workers=...)); inline=True runs the callbacks on the
    event loop's thread (milter.main(inline=True): fastest, but a callback
    that blocks holds every connection)."""
    cb = _callbacks()
    milter.set_connect_callback(cb['connect'])
    milter.set_helo_callback(cb['helo'])
    milter.set_envfrom_callback(cb['envfrom'])
    milter.set_envrcpt_callback(cb['envrcpt'])
    milter.set_header_callback(cb['header'])
    milter.set_eoh_callback(cb['eoh'])
    milter.set_body_callback(cb['body'])
    milter.set_eom_callback(cb['eom'])
    milter.set_abort_callback(cb['abort'])
    milter.set_close_callback(cb['close'])
    milter.setconn(socketname)
    if timeout > 0:
        milter.settimeout(timeout)
    ncb = cb['negotiate'] if milter.getversion() >= (1, 0, 1) else None
    milter.register(name, data=cb['data'], unknown=cb['unknown'],
                    negotiate=ncb)
    milter.opensocket(rmsock)
    start_seq = _seq
    try:
        if workers:
            milter.main(workers=workers)
        elif inline:
            milter.main(inline=True)
        else:
            milter.main()
    except milter.error as e:
        if start_seq == _seq:
            raise
        # pymilter's guess for a failure once connections came in; the
        # engine's own account of it follows, so the guess can be checked.
        raise milter.error('out of thread resources: %s' % e) from e


# A list (pymilter built a dict_keys here, which broke `import *`).
__all__ = [n for n in list(globals())
           if not n.startswith('_') and n not in
           ('os', 're', 'sys', 'threading', 'wraps', 'milter',
            'factory', 'inspect', 'MethodType')]
