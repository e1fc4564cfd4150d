/*
 * pmcore_perl.c - handler table for libpmcore that calls Perl callbacks.
 *
 * Every callback runs through call_sv(G_SCALAR|G_EVAL) inside
 * ENTER/SAVETMPS, so a Perl die never unwinds through a core frame: it is
 * logged and turned into the configured verdict (TEMPFAIL by default).
 * An exit is caught as well (pmp_safe_call) and goes on once the engine
 * has let go.
 */
#include "pmcore_perl.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>

/* SMFIS_* of Sendmail::PMilter are libmilter's values plus 100. */
#define PMP_SMFIS_BASE 100
/* Private: "answer later", for sans-I/O hosts that call _resume. */
#define PMP_SMFIS_PENDING 200

/* 1.27 answers negotiation with offered & SMFIP_DEFAULTS (on the wire only
 * the low 32 bits exist): RCPT_REJ and the MDS bits. */
#define PMP_DEFAULTS32 0xFFE00800u

static int pmp_free_magic(pTHX_ SV *sv, MAGIC *mg);
#ifdef USE_ITHREADS
/* A new ithread gets a copy of the Context hash but not its engine state:
 * the session belongs to the interpreter that created it. */
static int pmp_dup_magic(pTHX_ MAGIC *mg, CLONE_PARAMS *param)
{
    PERL_UNUSED_ARG(param);
    mg->mg_ptr = NULL;
    return 0;
}
#else
#define pmp_dup_magic 0
#endif
static MGVTBL pmp_vtbl = {0, 0, 0, 0, pmp_free_magic, 0, pmp_dup_magic, 0};

static void pmp_ctx_destroy(pTHX_ pmp_ctx *c)
{
    int i;

    pmc_session_free(c->own);
    for (i = 0; i < PMC_EV_COUNT; i++)
        SvREFCNT_dec(c->cb[i]);
    SvREFCNT_dec(c->quit_cb);
    SvREFCNT_dec(c->log_cb);
    SvREFCNT_dec((SV *)c->cbs_hv);
    SvREFCNT_dec(c->cb_sv);
    SvREFCNT_dec(c->ctx_rv); /* never refers to hv here (see pmp_ctx_rv) */
    for (i = 0; i < PMP_POOL_SLOTS; i++)
        SvREFCNT_dec(c->pool[i]);
    for (i = 0; i < PMC_STAGE_COUNT; i++)
        Safefree(c->symlist[i]);
    Safefree(c);
}

static int pmp_free_magic(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    if (mg->mg_ptr)
        pmp_ctx_destroy(aTHX_ (pmp_ctx *)mg->mg_ptr);
    mg->mg_ptr = NULL;
    return 0;
}

pmp_ctx *pmp_ctx_get(pTHX_ SV *ctx, int need)
{
    MAGIC *mg = NULL;

    if (SvROK(ctx) && SvTYPE(SvRV(ctx)) == SVt_PVHV)
        mg = mg_findext(SvRV(ctx), PERL_MAGIC_ext, &pmp_vtbl);
    if (mg && mg->mg_ptr)
        return (pmp_ctx *)mg->mg_ptr;
    if (need)
        croak("Sendmail::PMilter::Context: no milter session attached");
    return NULL;
}

/* --- exit() in Perl code the engine runs ---------------------------------
 *
 * Perl's exit unwinds every Perl context and longjmps to the outermost
 * JMPENV, past the engine's C frames.  Left alone, that abandons the engine
 * mid-step: replies already made for earlier commands are never written,
 * and the loop models cut their other connections wherever their output
 * stood.  So every call into Perl from under the engine catches the jump
 * (a JMPENV of its own around call_sv).  The connection whose callback
 * exited is ended at once (its earlier replies are still written, then a
 * clean close), no more Perl code runs for the engine, the server is asked
 * to stop, and the exit goes on from the XS entry point that started the
 * engine (pmp_exit_resume), or from the forked child once its connection
 * is closed.
 *
 * One interpreter per process runs the engine, so plain statics do. */
static unsigned pmp_exit_catches;  /* jumps caught so far */
static int pmp_exiting;            /* an exit is waiting to go on */
static int pmp_exit_status;        /* its status ($? when it was called) */
static pmc_server *pmp_exit_srv;   /* the server this process runs, if any */

int pmp_exit_pending(void) { return pmp_exiting; }
unsigned pmp_exit_count(void) { return pmp_exit_catches; }
void pmp_exit_server(pmc_server *srv) { pmp_exit_srv = srv; }
pmc_server *pmp_running_server(void) { return pmp_exit_srv; }

/* Stop the server now: nothing of the milter may run any more, so there is
 * nothing to drain for. */
void pmp_exit_stop(void)
{
    if (pmp_exiting && pmp_exit_srv)
        pmc_server_stop(pmp_exit_srv, 0);
}

void pmp_exit_resume(pTHX)
{
    if (!pmp_exiting)
        return;
    /* END blocks may use the module again, normally. */
    pmp_exiting = 0;
    pmp_exit_srv = NULL;
    my_exit((U32)pmp_exit_status);
}

I32 pmp_safe_call(pTHX_ int how, const void *what, I32 flags)
{
    dJMPENV;
    volatile I32 count = 0;
    int ret;

    JMPENV_PUSH(ret);
    if (ret == 0) {
        switch (how) {
        case PMP_CALL_METHOD:
            count = call_method((const char *)what, flags | G_EVAL);
            break;
        case PMP_CALL_PV:
            count = call_pv((const char *)what, flags | G_EVAL);
            break;
        default:
            count = call_sv((SV *)what, flags | G_EVAL);
            break;
        }
    }
    JMPENV_POP;
    if (ret == 0)
        return count;
    /* G_EVAL catches die; anything else that jumps is not ours. */
    if (ret != 1 && ret != 2)
        JMPENV_JUMP(ret);
    PL_curstash = PL_defstash;
    pmp_exit_catches++;
    if (!pmp_exiting) { /* a second exit keeps the first one's status */
        pmp_exiting = 1;
        pmp_exit_status = STATUS_UNIX;
    }
    return -1;
}

void pmp_log(pTHX_ pmp_ctx *c, int level, SV *msg)
{
    if (c && c->log_cb) {
        dSP;
        ENTER;
        SAVETMPS;
        PUSHMARK(SP);
        XPUSHs(sv_2mortal(newSViv(level)));
        XPUSHs(msg);
        PUTBACK;
        /* A log sink that dies must not take the conversation down; one
         * that exits has had Perl unwind our scope already. */
        if (pmp_safe_call(aTHX_ PMP_CALL_SV, c->log_cb, G_DISCARD) < 0) {
            pmp_exit_stop();
            return;
        }
        FREETMPS;
        LEAVE;
        return;
    }
    warn("Sendmail::PMilter: %" SVf, SVfARG(msg));
}

/* A callback died or returned garbage: log it, answer by policy. */
static int pmp_failed(pTHX_ pmp_ctx *c, SV *why)
{
    pmp_log(aTHX_ c, PMC_LOG_ERR, why);
    c->failed = 1;
    return c->die_verdict;
}

/* SMFIS_* number -> core verdict (for _resume); -1 if none. */
int pmp_core_verdict(int smfis)
{
    if (smfis == PMP_SMFIS_PENDING)
        return PMC_PENDING;
    smfis -= PMP_SMFIS_BASE;
    return smfis >= 0 && smfis <= PMC_ALL_OPTS ? smfis : -1;
}

/* Map a Perl return value to a core verdict, or -1 if the core says it is
 * not one for ev.  1.27 compares with string eq, so "100" counts as much
 * as 100: at most four digits, which also keeps the number in an int. */
static int pmp_verdict(pTHX_ SV *rv, pmc_event ev)
{
    IV v;

    if (!SvOK(rv))
        return -1;
    if (SvIOK(rv) && !SvNOK(rv) && !SvPOK(rv)) {
        v = SvIVX(rv);
    } else {
        STRLEN len, i;
        const char *p = SvPV(rv, len);
        if (len == 0 || len > 4)
            return -1;
        for (i = 0; i < len; i++)
            if (p[i] < '0' || p[i] > '9')
                return -1;
        v = atoi(p);
    }
    if (v == PMP_SMFIS_PENDING)
        return PMC_PENDING;
    v -= PMP_SMFIS_BASE;
    return pmc_verdict_valid(ev, (int)v) ? (int)v : -1;
}

/* A scalar this file may overwrite in place: no reference, object, magic
 * (tie, pos, ...) or read-only flag. */
static int pmp_plain_sv(SV *sv)
{
    return SvTYPE(sv) <= SVt_PVMG && !SvROK(sv) && !SvOBJECT(sv) &&
           !SvMAGICAL(sv) && !SvREADONLY(sv);
}

/* The one table of callbacks, in PMC_EV_* order: the key of the
 * callbacks hash, which is also the field of pmc_handlers and the h_
 * function.  The names array and the handler installation below are
 * generated from it, so a new event is one line here. */
#define PMP_EVENTS(X) \
    X(NEGOTIATE, negotiate) X(CONNECT, connect) X(HELO, helo) \
    X(ENVFROM, envfrom) X(ENVRCPT, envrcpt) X(DATA, data) \
    X(HEADER, header) X(EOH, eoh) X(BODY, body) X(EOM, eom) \
    X(ABORT, abort) X(CLOSE, close) X(UNKNOWN, unknown)

#define PMP_NAME(ev, f) [PMC_EV_##ev] = #f,
static const char *const pmp_cb_names[PMC_EV_COUNT] = {PMP_EVENTS(PMP_NAME)};
#undef PMP_NAME
#define PMP_LEN(ev, f) [PMC_EV_##ev] = sizeof #f - 1,
static const unsigned char pmp_cb_lens[PMC_EV_COUNT] = {PMP_EVENTS(PMP_LEN)};
#undef PMP_LEN

#define PMP_ONE(ev, f) +1
_Static_assert(0 PMP_EVENTS(PMP_ONE) == PMC_EV_COUNT,
               "PMP_EVENTS must list every PMC_EV_* event");
#undef PMP_ONE

/* sv_setpvn for the SVs this file keeps (plain scalars): when the buffer
 * is ours alone and big enough, the bytes are copied and the flags left as
 * sv_setpvn leaves them (POK only), without its checks for the other cases
 * (copy-on-write, offset, taint, growing) and its call.  The UTF8 flag
 * goes too: a callback may have decoded the SV in place. */
PERL_STATIC_INLINE void pmp_sv_set(pTHX_ SV *sv, const void *p, size_t n)
{
    if (LIKELY(SvTYPE(sv) >= SVt_PV && SvLEN(sv) > n && !SvIsCOW(sv) &&
               !SvOOK(sv) && !PL_tainting)) {
        char *d = SvPVX(sv);
        Copy(p, d, n, char);
        d[n] = '\0';
        SvCUR_set(sv, n);
        SvPOK_only(sv);
        return;
    }
    sv_setpvn(sv, (const char *)p, n);
    SvUTF8_off(sv);
}

/* An argument of pmp_call is borrowed when it is the pool SV of its
 * position (the connection keeps it); any other the call owns. */
#define PMP_BORROWED(c, i, sv) ((i) < PMP_POOL_SLOTS && (c)->pool[i] == (sv))

/* A handler called after exit: no Perl runs.  The session ends from
 * inside the handler, so the event gets no reply (the engine writes what
 * earlier commands were owed, then closes).  Negotiation goes on to its
 * reply (the core writes it before it sees the end): a complete packet
 * all the same. */
static int pmp_exited(pTHX_ pmp_ctx *c, pmc_session *s, pmc_event ev,
                      SV **args, int n)
{
    int i;

    for (i = 0; i < n; i++)
        if (!PMP_BORROWED(c, i, args[i]))
            SvREFCNT_dec(args[i]);
    if (ev != PMC_EV_ABORT && ev != PMC_EV_CLOSE)
        (void)pmc_session_end(s, PMC_OK);
    return PMC_CONTINUE;
}

/* 1.27 keeps the name of the running callback in {cb}.  Set in place, in
 * the SV the hash holds (kept from the last call while the hash still
 * holds it: refcount 2, ours and the hash's): a new SV and a hash store
 * per callback cost more than the rest of pmp_call.  A run of one
 * callback (the headers) finds its name there already, as a string
 * sv_setpvn would leave as it is: then nothing is written. */
static void pmp_set_cb_name(pTHX_ pmp_ctx *c, pmc_event ev)
{
    const char *name = pmp_cb_names[ev];
    STRLEN len = pmp_cb_lens[ev];
    SV *cb = c->cb_sv;

    if (!cb || SvREFCNT(cb) < 2 || !pmp_plain_sv(cb)) {
        SV **svp = hv_fetchs(c->hv, "cb", 1);
        SvREFCNT_dec(cb);
        c->cb_sv = cb = svp && pmp_plain_sv(*svp)
            ? SvREFCNT_inc_simple_NN(*svp) : NULL;
    }
    if (!cb) {
        (void)hv_stores(c->hv, "cb", newSVpvn(name, len));
        return;
    }
    if ((SvFLAGS(cb) & (SVf_POK | SVp_POK | SVf_IOK | SVp_IOK | SVf_NOK |
                        SVp_NOK)) == (SVf_POK | SVp_POK) &&
        !SvIsCOW(cb) && SvCUR(cb) == len && !PL_tainting) {
        const char *p = SvPVX(cb);
        STRLEN i;
        for (i = 0; i < len && p[i] == name[i]; i++)
            ;
        if (i == len)
            return;
    }
    /* sv_setpvn keeps an SV's UTF8 flag where pmp_sv_set drops it: a
     * {cb} a callback upgraded keeps it, as before. */
    if (SvUTF8(cb))
        sv_setpvn(cb, name, len);
    else
        pmp_sv_set(aTHX_ cb, name, len);
}

/* $_[0]: the connection's one RV to the Context hash.  It counts as a
 * reference to the hash only during a call, since kept it would close
 * the cycle hash -> magic -> pmp_ctx -> RV -> hash.  A call nested in a
 * callback of the same Context gets a mortal RV of its own. */
static SV *pmp_ctx_rv(pTHX_ pmp_ctx *c)
{
    SV *rv = c->ctx_rv;

    if (!rv)
        c->ctx_rv = rv = newSV_type(SVt_IV);
    else if (SvROK(rv))
        return sv_2mortal(newRV_inc((SV *)c->hv));
    SvRV_set(rv, SvREFCNT_inc_simple_NN((SV *)c->hv));
    SvROK_on(rv);
    return rv;
}

/* After the call: the RV lets go of the hash, unless the callback kept
 * it (\$_[0]), weakened it, or assigned to $_[0]; then it is the
 * callback's, and the next call makes another, as 1.27's fresh $ctx per
 * call would be.  May free the Context and c with it: the caller's last
 * use of c. */
PERL_STATIC_INLINE void pmp_ctx_unref(pTHX_ pmp_ctx *c, SV *rv)
{
    SV *hv = (SV *)c->hv;

    if (rv != c->ctx_rv)
        return; /* the mortal of a nested call */
    if (SvREFCNT(rv) == 1 && SvROK(rv) && !SvWEAKREF(rv) &&
        SvRV(rv) == hv && !SvMAGICAL(rv) && !SvREADONLY(rv)) {
        SvROK_off(rv);
        SvRV_set(rv, NULL);
        SvREFCNT_dec(hv);
    } else {
        c->ctx_rv = NULL;
        SvREFCNT_dec(rv);
    }
}

/* Call the Perl callback of 'ev' with ctx and args: pool SVs (borrowed)
 * or owned SVs, which this call frees; &PL_sv_undef may be among them. */
static int pmp_call(pmp_ctx *c, pmc_session *s, pmc_event ev, SV **args,
                    int n)
{
    dTHXa(c->perl);
    dSP;
    int count, i, v, busy;
    SV *rv, *self;
    SSize_t floor;
    I32 saveix;

    c->s = s;
    c->failed = 0;
    if (pmp_exiting)
        return pmp_exited(aTHX_ c, s, ev, args, n);
    pmp_set_cb_name(aTHX_ c, ev);
    /* The scope of one call, without ENTER/SAVETMPS' own save entries: a
     * tmps floor for our mortals and the return value, and the save
     * stack cut back to here for what call_sv leaves on it (PL_op).
     * A die is caught inside call_sv (G_EVAL), so the code below always
     * runs, but for an exit, after which Perl has unwound it all. */
    saveix = PL_savestack_ix;
    floor = PL_tmps_floor;
    PL_tmps_floor = PL_tmps_ix;
    PUSHMARK(SP);
    EXTEND(SP, n + 1);
    PUSHs(self = pmp_ctx_rv(aTHX_ c));
    /* The owned arguments become mortal only now, above the floor: made
     * before it, inside a server loop (one XS call that never returns)
     * nothing would ever free them. */
    for (i = 0; i < n; i++)
        PUSHs(PMP_BORROWED(c, i, args[i]) ? args[i] : sv_2mortal(args[i]));
    PUTBACK;
    busy = c->busy;
    c->busy = 1;
    count = pmp_safe_call(aTHX_ PMP_CALL_SV, SvRV(c->cb[ev]), G_SCALAR);
    c->busy = busy;
    if (count < 0) {
        /* Perl has unwound our scope and freed our mortals.  Our floor is
         * no save entry, so the unwinding left it raised: put it back, as
         * SAVETMPS' entry would have been. */
        PL_tmps_floor = floor;
        pmp_log(aTHX_ c, PMC_LOG_NOTICE, sv_2mortal(newSVpvf(
            "exit(%d) in the %s callback: the connection is closed, then "
            "the process exits\n", pmp_exit_status, pmc_event_name(ev))));
        pmp_exit_stop();
        v = pmp_exited(aTHX_ c, s, ev, NULL, 0);
        pmp_ctx_unref(aTHX_ c, self);
        return v;
    }
    SPAGAIN;
    rv = count > 0 ? POPs : &PL_sv_undef;
    PUTBACK;
    if (SvTRUE(ERRSV)) {
        v = pmp_failed(aTHX_ c, sv_2mortal(newSVsv(ERRSV)));
    } else if (ev == PMC_EV_ABORT || ev == PMC_EV_CLOSE) {
        v = PMC_CONTINUE; /* the protocol has no reply to these */
    } else if ((v = pmp_verdict(aTHX_ rv, ev)) < 0 ||
               (v == PMC_PENDING && c->s != c->own)) {
        SV *shown = SvOK(rv) ? rv : sv_2mortal(newSVpvs("undef"));
        v = pmp_failed(aTHX_ c, sv_2mortal(newSVpvf(
                "invalid callback return %" SVf " from %s\n",
                SVfARG(shown), pmc_event_name(ev))));
    }
    /* The reply text lives for one callback, as in 1.27.  Only setreply
     * sets it: a hash delete for every callback cost more than the
     * callback's own frame. */
    if (c->reply_set) {
        c->reply_set = 0;
        (void)hv_deletes(c->hv, "reply", G_DISCARD);
    }
    FREETMPS;
    PL_tmps_floor = floor;
    LEAVE_SCOPE(saveix);
    pmp_ctx_unref(aTHX_ c, self);
    return v;
}

#define CTX(ud) ((pmp_ctx *)(ud))
/* An argument for pmp_call, which takes ownership. */
#define ARG_STR(p, l) newSVpvn((const char *)(p), (l))

/* The argument SV of position i: the connection's pool SV, set in place
 * rather than allocated and freed for every callback.  Reused only while
 * nobody else holds it (refcount 1: a callback that kept \$_[1] keeps
 * that SV, and the next call gets a fresh one, as with 1.27's fresh
 * scalars), while it is still a plain scalar, and while its buffer is
 * small: a connection must not keep a 1 MiB body chunk's buffer for its
 * life.  A call nested in a callback of the same Context (its arguments
 * are in use) gets owned SVs. */
#define PMP_POOL_MAX 8192
static SV *pmp_pool_renew(pTHX_ pmp_ctx *c, int i)
{
    if (c->busy || i >= PMP_POOL_SLOTS)
        return newSV(0);
    SvREFCNT_dec(c->pool[i]);
    return c->pool[i] = newSV(0);
}

/* Inline: two to four arguments a callback, the hot path of the loop. */
PERL_STATIC_INLINE SV *pmp_pooled(pTHX_ pmp_ctx *c, int i)
{
    SV *sv;

    if (LIKELY(!c->busy && i < PMP_POOL_SLOTS && (sv = c->pool[i]) &&
               SvREFCNT(sv) == 1 && pmp_plain_sv(sv) &&
               !(SvPOK(sv) && SvLEN(sv) > 2 * PMP_POOL_MAX)))
        return sv;
    return pmp_pool_renew(aTHX_ c, i);
}

PERL_STATIC_INLINE SV *pmp_pooled_str(pTHX_ pmp_ctx *c, int i,
                                      const void *p, size_t n)
{
    SV *sv;

    if (n > PMP_POOL_MAX)
        return ARG_STR(p, n);
    sv = pmp_pooled(aTHX_ c, i);
    pmp_sv_set(aTHX_ sv, p, n);
    return sv;
}

/* The packed sockaddr 1.27 passes to connect, built here so no Socket6
 * is needed: the same bytes Socket's pack_sockaddr_in/in6/un give. */
static SV *pmp_sockaddr(pTHX_ const pmc_connect_info *ci)
{
    if (ci->family == '4' && ci->addr_bin_len == 4) {
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons(ci->port);
        memcpy(&sa.sin_addr, ci->addr_bin, 4);
        return ARG_STR(&sa, sizeof sa);
    }
    if (ci->family == '6' && ci->addr_bin_len == 16) {
        struct sockaddr_in6 sa;
        memset(&sa, 0, sizeof sa);
        sa.sin6_family = AF_INET6;
        sa.sin6_port = htons(ci->port);
        memcpy(&sa.sin6_addr, ci->addr_bin, 16);
        return ARG_STR(&sa, sizeof sa);
    }
    if (ci->family == 'L' && ci->addr.len < sizeof(((struct sockaddr_un *)0)
                                                       ->sun_path)) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, ci->addr.ptr, ci->addr.len);
        return ARG_STR(&sa, sizeof sa);
    }
    return &PL_sv_undef;
}

static int h_connect(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    dTHXa(CTX(ud)->perl);
    SV *a[2];
    a[0] = ARG_STR(ci->host.ptr, ci->host.len);
    a[1] = pmp_sockaddr(aTHX_ ci);
    return pmp_call(CTX(ud), s, PMC_EV_CONNECT, a, 2);
}

static int h_helo(pmc_session *s, void *ud, pmc_str helo)
{
    dTHXa(CTX(ud)->perl);
    SV *a[1];
    a[0] = ARG_STR(helo.ptr, helo.len);
    return pmp_call(CTX(ud), s, PMC_EV_HELO, a, 1);
}

static int pmp_args_call(pmc_session *s, void *ud, pmc_event ev,
                         const pmc_args *args)
{
    dTHXa(CTX(ud)->perl);
    SV *small[8], **a = small;
    size_t i;
    int v;

    if (args->argc > 8)
        Newx(a, args->argc, SV *);
    for (i = 0; i < args->argc; i++)
        a[i] = pmp_pooled_str(aTHX_ CTX(ud), (int)i, args->argv[i].ptr,
                              args->argv[i].len);
    v = pmp_call(CTX(ud), s, ev, a, (int)args->argc);
    if (a != small)
        Safefree(a);
    return v;
}

static int h_envfrom(pmc_session *s, void *ud, const pmc_args *args)
{
    return pmp_args_call(s, ud, PMC_EV_ENVFROM, args);
}

static int h_envrcpt(pmc_session *s, void *ud, const pmc_args *args)
{
    return pmp_args_call(s, ud, PMC_EV_ENVRCPT, args);
}

static int h_header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    pmp_ctx *c = CTX(ud);
    dTHXa(c->perl);
    SV *a[2];
    a[0] = pmp_pooled_str(aTHX_ c, 0, name.ptr, name.len);
    a[1] = pmp_pooled_str(aTHX_ c, 1, value.ptr, value.len);
    return pmp_call(c, s, PMC_EV_HEADER, a, 2);
}

static int h_body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    pmp_ctx *c = CTX(ud);
    dTHXa(c->perl);
    SV *a[2];
    a[0] = pmp_pooled_str(aTHX_ c, 0, p, n);
    a[1] = pmp_pooled(aTHX_ c, 1);
    sv_setuv(a[1], n);
    return pmp_call(c, s, PMC_EV_BODY, a, 2);
}

static int h_unknown(pmc_session *s, void *ud, pmc_str cmd)
{
    dTHXa(CTX(ud)->perl);
    SV *a[1];
    a[0] = ARG_STR(cmd.ptr, cmd.len);
    return pmp_call(CTX(ud), s, PMC_EV_UNKNOWN, a, 1);
}

#define NOARG_HANDLER(fn, ev) \
    static int fn(pmc_session *s, void *ud) \
    { return pmp_call(CTX(ud), s, ev, NULL, 0); }
NOARG_HANDLER(h_data, PMC_EV_DATA)
NOARG_HANDLER(h_eoh, PMC_EV_EOH)
NOARG_HANDLER(h_eom, PMC_EV_EOM)
NOARG_HANDLER(h_abort, PMC_EV_ABORT)

/* close also runs 1.27's undocumented 'quit' hook when the conversation
 * ended without an error (the core has no separate QUIT event). */
static int h_close(pmc_session *s, void *ud)
{
    pmp_ctx *c = CTX(ud);
    SV *keep;

    if (c->quit_cb && pmc_session_error(s) == NULL) {
        keep = c->cb[PMC_EV_CLOSE];
        c->cb[PMC_EV_CLOSE] = c->quit_cb;
        (void)pmp_call(c, s, PMC_EV_CLOSE, NULL, 0);
        c->cb[PMC_EV_CLOSE] = keep;
    }
    if (c->cb[PMC_EV_CLOSE])
        (void)pmp_call(c, s, PMC_EV_CLOSE, NULL, 0);
    return PMC_CONTINUE;
}

static void pmp_set_ref(pTHX_ pmp_ctx *c, const char *key, SV *sv)
{
    (void)hv_store(c->hv, key, (I32)strlen(key), newRV_inc(sv), 0);
}

/* Negotiation.  In 1.27 mode the reply echoes the MTA's actions and keeps
 * offered & SMFIP_DEFAULTS; a negotiate callback starts from the raw offer.
 * The version is the core's (libmilter's rule: the lower of the MTA's and
 * 6), which equals the echo 1.27 gave to the 2 and 6 it accepted, so an MTA
 * offering a future version is answered rather than turned away.  1.27's
 * refusal of 3, 4 and 5 is kept: those are old MTAs that milters written
 * for 1.27 never met.  Otherwise the core's proposal (derived NO* bits, the
 * register() flags) is the starting point.  The core then refuses bits the
 * MTA did not offer. */
static int h_negotiate(pmc_session *s, void *ud, pmc_negotiation *n)
{
    pmp_ctx *c = CTX(ud);
    dTHXa(c->perl);
    SV *v, *a, *p, *args[3];
    int r;

    if (c->compat) {
        if (n->mta_version >= 3 && n->mta_version <= 5) {
            SV *msg = newSVpvf(
                "SMFIC_OPTNEG: unsupported milter protocol version %lu\n",
                (unsigned long)n->mta_version);
            pmp_log(aTHX_ c, PMC_LOG_ERR, msg);
            SvREFCNT_dec(msg);
            return PMC_REJECT;
        }
        n->actions = n->mta_actions;
        n->protocol = n->mta_protocol & PMP_DEFAULTS32;
    }
    if (!c->cb[PMC_EV_NEGOTIATE]) {
        (void)hv_stores(c->hv, "protocol", newSVuv(n->protocol));
        return PMC_CONTINUE;
    }
    /* Owned here (not mortal: see pmp_call) until read back below. */
    v = newSVuv(n->version);
    a = newSVuv(c->compat ? n->mta_actions : n->actions);
    p = newSVuv(c->compat ? n->mta_protocol : n->protocol);
    pmp_set_ref(aTHX_ c, "milter_protocol_version_ref", v);
    pmp_set_ref(aTHX_ c, "actions_available_ref", a);
    pmp_set_ref(aTHX_ c, "protocol_steps_available_ref", p);
    args[0] = newRV_inc(v);
    args[1] = newRV_inc(a);
    args[2] = newRV_inc(p);
    r = pmp_call(c, s, PMC_EV_NEGOTIATE, args, 3);
    n->version = (uint32_t)SvUV(v);
    n->actions = (uint32_t)SvUV(a);
    n->protocol = (uint32_t)SvUV(p);
    SvREFCNT_dec(v);
    SvREFCNT_dec(a);
    SvREFCNT_dec(p);
    (void)hv_stores(c->hv, "protocol", newSVuv(n->protocol));
    if (r == PMC_ALL_OPTS || r == PMC_CONTINUE)
        return r;
    /* 1.27 ignored the code; a die (policy verdict) still refuses. */
    if (c->compat && !c->failed)
        return PMC_CONTINUE;
    return PMC_REJECT;
}

static SV *pmp_code(pTHX_ HV *hv, const char *key)
{
    SV **svp = hv_fetch(hv, key, (I32)strlen(key), 0);
    if (svp && SvROK(*svp) && SvTYPE(SvRV(*svp)) == SVt_PVCV)
        return newSVsv(*svp);
    return NULL;
}

static IV pmp_opt_iv(pTHX_ HV *o, const char *key, IV def)
{
    SV **svp = o ? hv_fetch(o, key, (I32)strlen(key), 0) : NULL;
    return svp && SvOK(*svp) ? SvIV(*svp) : def;
}

static void pmp_opt_symlist(pTHX_ pmp_ctx *c, HV *o)
{
    SV **svp = o ? hv_fetchs(o, "symlist", 0) : NULL;
    HV *sl;
    int i;

    if (!svp || !SvROK(*svp) || SvTYPE(SvRV(*svp)) != SVt_PVHV)
        return;
    sl = (HV *)SvRV(*svp);
    for (i = 0; i < PMC_STAGE_COUNT; i++) {
        char k[2] = {(char)('0' + i), 0};
        SV **e = hv_fetch(sl, k, 1, 0);
        STRLEN len;
        const char *p;
        if (!e || !SvOK(*e))
            continue;
        p = SvPVbyte(*e, len);
        c->symlist[i] = savepvn(p, len);
        c->cfg.symlist[i] = c->symlist[i];
    }
}

void pmp_ctx_attach(pTHX_ SV *ctx, HV *cbs, HV *o)
{
    pmp_ctx *c;
    IV dv;
    int i, also[PMC_EV_COUNT];

    if (!SvROK(ctx) || SvTYPE(SvRV(ctx)) != SVt_PVHV)
        croak("Sendmail::PMilter::Context: not a hash-based object");
    if (pmp_ctx_get(aTHX_ ctx, 0))
        return;
    Newxz(c, 1, pmp_ctx);
    c->perl = aTHX;
    c->hv = (HV *)SvRV(ctx);
    for (i = 0; i < PMC_EV_COUNT; i++)
        c->cb[i] = cbs ? pmp_code(aTHX_ cbs, pmp_cb_names[i]) : NULL;
    c->quit_cb = cbs ? pmp_code(aTHX_ cbs, "quit") : NULL;
    c->cbs_hv = cbs ? (HV *)SvREFCNT_inc((SV *)cbs) : NULL;
    if (o) {
        SV **svp = hv_fetchs(o, "log", 0);
        if (svp && SvROK(*svp) && SvTYPE(SvRV(*svp)) == SVt_PVCV)
            c->log_cb = newSVsv(*svp);
    }
    pmc_config_init(&c->cfg);
    c->compat = (int)pmp_opt_iv(aTHX_ o, "compat", 1);
    c->cfg.version = (uint32_t)pmp_opt_iv(aTHX_ o, "version", 6);
    c->cfg.actions = (uint32_t)pmp_opt_iv(aTHX_ o, "actions", 0);
    c->cfg.protocol = (uint32_t)pmp_opt_iv(aTHX_ o, "protocol", 0);
    c->cfg.max_packet = (size_t)pmp_opt_iv(aTHX_ o, "max_packet", 0);
    c->cfg.skip_any_event = (int)pmp_opt_iv(aTHX_ o, "skip_any_event", 0);
    c->read_timeout_ms = (int)pmp_opt_iv(aTHX_ o, "read_timeout_ms", -1);
    c->idle_timeout_ms = (int)pmp_opt_iv(aTHX_ o, "idle_timeout_ms", -1);
    pmp_opt_symlist(aTHX_ c, o);
    dv = pmp_opt_iv(aTHX_ o, "die_reply", PMP_SMFIS_BASE + PMC_TEMPFAIL);
    c->die_verdict = (int)(dv - PMP_SMFIS_BASE);
    if (c->die_verdict < PMC_CONTINUE || c->die_verdict > PMC_TEMPFAIL)
        c->die_verdict = PMC_TEMPFAIL;

    /* Only events with a callback get a handler: the core answers the
     * others itself (and, outside 1.27 mode, asks the MTA not to send
     * them).  negotiate is always ours in 1.27 mode; close also runs the
     * 'quit' hook. */
    memset(also, 0, sizeof also);
    also[PMC_EV_NEGOTIATE] = c->compat;
    also[PMC_EV_CLOSE] = c->quit_cb != NULL;
#define PMP_SET(ev, f) \
    if (c->cb[PMC_EV_##ev] || also[PMC_EV_##ev]) c->h.f = h_##f;
    PMP_EVENTS(PMP_SET)
#undef PMP_SET

    sv_magicext(SvRV(ctx), NULL, PERL_MAGIC_ext, &pmp_vtbl, (char *)c, 0)
        ->mg_flags |= MGf_DUP;
}

const void *pmp_by_name(const void *table, size_t count, size_t size,
                        const char *name)
{
    const char *p = table;
    size_t i;

    for (i = 0; i < count; i++, p += size)
        if (strEQ(*(const char *const *)(const void *)p, name))
            return p;
    return NULL;
}

pmc_session *pmp_open(pTHX_ pmp_ctx *c)
{
    if (!c->own) {
        c->own = pmc_session_new(&c->h, c, &c->cfg);
        if (!c->own)
            croak("Sendmail::PMilter::Context: out of memory");
    }
    c->s = c->own;
    return c->own;
}

SV *pmp_status_sv(pTHX_ pmc_status st)
{
    return newSVpv(pmc_status_name(st), 0);
}
