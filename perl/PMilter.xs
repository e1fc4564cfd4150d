/* PMilter.xs - entry points only; the work is in pmcore_perl*.c. */
#include "pmcore_perl.h"

/* An exit() in a callback makes Perl unwind every scope, which may free
 * the objects the running engine call still uses (a Context held only by a
 * lexical, the pipe of a test): entry points that run callbacks hold them
 * until the engine returns, then let an exit caught meanwhile go on.  Only
 * one caught meanwhile: a DESTROY run by the release belongs to an exit
 * still on its way out. */
#define PMP_HOLD(rv) \
    unsigned pmp_exits_ = pmp_exit_count(); \
    SV *pmp_held_ = SvROK(rv) ? SvREFCNT_inc_simple_NN(SvRV(rv)) : NULL
#define PMP_RELEASE() \
    STMT_START { \
        SvREFCNT_dec(pmp_held_); \
        if (pmp_exit_count() != pmp_exits_) \
            pmp_exit_resume(aTHX); \
    } STMT_END

MODULE = Sendmail::PMilter  PACKAGE = Sendmail::PMilter

PROTOTYPES: DISABLE

const char *
_core_version()
  CODE:
    RETVAL = PMC_VERSION_STRING;
  OUTPUT:
    RETVAL

SV *
_metrics_text()
  CODE:
    {
        pmc_server *srv = pmp_running_server();
        pmc_buf b = {0};
        if (!srv)
            XSRETURN_UNDEF;
        if (pmc_server_metrics_text(srv, &b) != PMC_OK) {
            pmc_buf_free(&b);
            croak("metrics_text: out of memory");
        }
        RETVAL = newSVpvn(b.len ? (const char *)b.data : "", b.len);
        pmc_buf_free(&b);
    }
  OUTPUT:
    RETVAL

void
_listen(spec, mode, backlog)
    const char *spec
    int mode
    int backlog
  PPCODE:
    {
        SV *why;
        int fd = pmp_listen(aTHX_ spec, mode, backlog, &why);
        mXPUSHi(fd);
        XPUSHs(why);
    }

SV *
_server_run(milter, fd, opts, tmpl)
    SV *milter
    int fd
    HV *opts
    SV *tmpl
  CODE:
    {
        PMP_HOLD(tmpl);
        RETVAL = SvREFCNT_inc(pmp_server_run(aTHX_ milter, fd, opts, tmpl));
        PMP_RELEASE();
    }
  OUTPUT:
    RETVAL

MODULE = Sendmail::PMilter  PACKAGE = Sendmail::PMilter::Context

void
_attach(ctx, callbacks, opts)
    SV *ctx
    SV *callbacks
    SV *opts
  CODE:
    pmp_ctx_attach(aTHX_ ctx,
        SvROK(callbacks) && SvTYPE(SvRV(callbacks)) == SVt_PVHV
            ? (HV *)SvRV(callbacks) : NULL,
        SvROK(opts) && SvTYPE(SvRV(opts)) == SVt_PVHV
            ? (HV *)SvRV(opts) : NULL);

SV *
_action(ctx, op, ...)
    SV *ctx
    const char *op
  CODE:
    {
        SV *e = pmp_action(aTHX_ pmp_ctx_get(aTHX_ ctx, 1), op,
                           &ST(2), items - 2);
        RETVAL = e ? SvREFCNT_inc(e) : &PL_sv_undef;
    }
  OUTPUT:
    RETVAL

# Context.pm's _do and _eom_flag: the one copy of 1.27's checks and of the
# die of a failed action, which addheader below uses too.
void
_do(ctx, op, ...)
    SV *ctx
    const char *op
  PPCODE:
    {
        SV *e = pmp_action(aTHX_ pmp_ctx_get(aTHX_ ctx, 1), op,
                           &ST(2), items - 2);
        if (e)
            pmp_action_die(aTHX_ op, e);
        mXPUSHi(1);
    }

void
_eom_flag(ctx, name, flag = &PL_sv_undef, flagname = NULL)
    SV *ctx
    const char *name
    SV *flag
    const char *flagname
  PPCODE:
    pmp_eom_flag(aTHX_ ctx, name, SvOK(flag) ? SvUV(flag) : 0,
                 SvOK(flag) ? flagname : NULL);

# addheader is in C: the method most milters call for every message.
void
addheader(ctx, name, value)
    SV *ctx
    SV *name
    SV *value
  PROTOTYPE: $$$
  PPCODE:
    {
        SV *a[2], *e;
        if (!SvTRUE(name))
            croak("addheader: no header name\n");
        pmp_eom_flag(aTHX_ ctx, "addheader", 0x1, "ADDHDRS");
        if (!SvOK(value))
            croak("addheader: no header value\n");
        a[0] = name;
        a[1] = value;
        e = pmp_action(aTHX_ pmp_ctx_get(aTHX_ ctx, 1), "addheader", a, 2);
        if (e)
            pmp_action_die(aTHX_ "addheader", e);
        mXPUSHi(1);
    }

SV *
getsymval(ctx, name)
    SV *ctx
    SV *name
  CODE:
    {
        pmp_ctx *c = pmp_ctx_get(aTHX_ ctx, 0);
        RETVAL = c ? SvREFCNT_inc(pmp_getsymval(aTHX_ c, name))
                   : &PL_sv_undef;
    }
  OUTPUT:
    RETVAL

# $ctx->{symbols}: a hash tied to Sendmail::PMilter::Context::Symbols,
# its object { ctx => a weak reference to the Context }, as tie and a
# TIEHASH would make it; made here because that cost each connection
# about 6.6k instructions, over a fifth of making its Context.
SV *
_symbols_view(ctx)
    SV *ctx
  CODE:
    {
        HV *obj, *view;
        SV *weak, *tie;

        if (!SvROK(ctx) || SvTYPE(SvRV(ctx)) != SVt_PVHV)
            croak("Sendmail::PMilter::Context: not a hash-based object");
        obj = newHV();
        weak = newRV_inc(SvRV(ctx));
        sv_rvweaken(weak);
        (void)hv_stores(obj, "ctx", weak);
        tie = sv_bless(newRV_noinc((SV *)obj),
                       gv_stashpvs("Sendmail::PMilter::Context::Symbols",
                                   GV_ADD));
        view = newHV();
        sv_magic((SV *)view, tie, PERL_MAGIC_tied, NULL, 0);
        SvREFCNT_dec(tie); /* the magic holds it */
        RETVAL = newRV_noinc((SV *)view);
    }
  OUTPUT:
    RETVAL

SV *
_stage_macros(ctx, letter)
    SV *ctx
    const char *letter
  CODE:
    {
        pmp_ctx *c = pmp_ctx_get(aTHX_ ctx, 0);
        RETVAL = c ? SvREFCNT_inc(pmp_stage_macros(aTHX_ c, letter[0]))
                   : &PL_sv_undef;
    }
  OUTPUT:
    RETVAL

SV *
_feed(ctx, bytes)
    SV *ctx
    SV *bytes
  CODE:
    {
        pmp_ctx *c = pmp_ctx_get(aTHX_ ctx, 1);
        STRLEN len;
        const char *p = SvPVbyte(bytes, len);
        PMP_HOLD(ctx);
        RETVAL = pmp_status_sv(aTHX_
                     pmc_session_feed(pmp_open(aTHX_ c), p, len));
        PMP_RELEASE();
    }
  OUTPUT:
    RETVAL

SV *
_eof(ctx)
    SV *ctx
  CODE:
    {
        PMP_HOLD(ctx);
        RETVAL = pmp_status_sv(aTHX_
                     pmc_session_eof(pmp_open(aTHX_ pmp_ctx_get(aTHX_ ctx, 1))));
        PMP_RELEASE();
    }
  OUTPUT:
    RETVAL

SV *
_output(ctx)
    SV *ctx
  CODE:
    {
        pmc_session *s = pmp_open(aTHX_ pmp_ctx_get(aTHX_ ctx, 1));
        size_t len;
        const uint8_t *p = pmc_session_output(s, &len);
        RETVAL = newSVpvn(p ? (const char *)p : "", len);
        pmc_session_consume(s, len);
    }
  OUTPUT:
    RETVAL

SV *
_resume(ctx, verdict)
    SV *ctx
    int verdict
  CODE:
    {
        pmp_ctx *c = pmp_ctx_get(aTHX_ ctx, 1);
        PMP_HOLD(ctx);
        RETVAL = pmp_status_sv(aTHX_ pmc_session_resume(pmp_open(aTHX_ c),
                                                        pmp_core_verdict(verdict)));
        PMP_RELEASE();
    }
  OUTPUT:
    RETVAL

int
_closed(ctx)
    SV *ctx
  CODE:
    RETVAL = pmc_session_is_closed(pmp_open(aTHX_ pmp_ctx_get(aTHX_ ctx, 1)));
  OUTPUT:
    RETVAL

void
_error(ctx)
    SV *ctx
  PPCODE:
    {
        pmc_session *s = pmp_open(aTHX_ pmp_ctx_get(aTHX_ ctx, 1));
        const pmc_error *e = pmc_session_error(s);
        if (e) {
            mXPUSHp(pmc_status_name(e->code), strlen(pmc_status_name(e->code)));
            mXPUSHu(e->offset);
            mXPUSHp(e->message, strlen(e->message));
        }
    }

void
_offer(ctx)
    SV *ctx
  PPCODE:
    {
        pmp_ctx *c = pmp_ctx_get(aTHX_ ctx, 1);
        uint32_t v = 0, a = 0, p = 0;
        if (c->s)
            pmc_session_offer(c->s, &v, &a, &p);
        mXPUSHu(v); mXPUSHu(a); mXPUSHu(p);
    }

void
_negotiated(ctx)
    SV *ctx
  PPCODE:
    {
        pmp_ctx *c = pmp_ctx_get(aTHX_ ctx, 1);
        mXPUSHu(c->s ? pmc_session_version(c->s) : 0);
        mXPUSHu(c->s ? pmc_session_actions(c->s) : 0);
        mXPUSHu(c->s ? pmc_session_protocol(c->s) : 0);
    }

SV *
_serve_fd(ctx, fd)
    SV *ctx
    int fd
  CODE:
    {
        SV *why;
        PMP_HOLD(ctx);
        (void)pmp_serve_fd(aTHX_ pmp_ctx_get(aTHX_ ctx, 1), fd, &why);
        RETVAL = SvREFCNT_inc(why);
        PMP_RELEASE();
    }
  OUTPUT:
    RETVAL

MODULE = Sendmail::PMilter  PACKAGE = Sendmail::PMilter::_Pipe

SV *
new(cls, ctx, opts = NULL, fd = -1)
    const char *cls
    SV *ctx
    SV *opts
    int fd
  CODE:
    {
        pmp_pipe *p = pmp_pipe_new(aTHX_ ctx, fd,
            opts && SvROK(opts) && SvTYPE(SvRV(opts)) == SVt_PVHV
                ? (HV *)SvRV(opts) : NULL);
        RETVAL = sv_setref_pv(newSV(0), cls, p);
    }
  OUTPUT:
    RETVAL

SV *
call(self, op, ...)
    SV *self
    const char *op
  CODE:
    {
        PMP_HOLD(self);
        RETVAL = SvREFCNT_inc(pmp_pipe_call(aTHX_
                     INT2PTR(pmp_pipe *, SvIV(SvRV(self))), op, &ST(2),
                     items - 2));
        PMP_RELEASE();
    }
  OUTPUT:
    RETVAL

void
DESTROY(self)
    SV *self
  CODE:
    {
        unsigned exits = pmp_exit_count();
        pmp_pipe_free(aTHX_ INT2PTR(pmp_pipe *, SvIV(SvRV(self))));
        if (pmp_exit_count() != exits) /* a close callback exited */
            pmp_exit_resume(aTHX);
    }
