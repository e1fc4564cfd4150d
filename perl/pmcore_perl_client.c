/*
 * pmcore_perl_client.c - Sendmail::PMilter::_Pipe, a private MTA for the
 * tests: libpmcore's client drives a Context's own session in-process
 * (pmc_transport_session), so the Perl suite exercises the real engine
 * without sockets or forks.
 */
#include "pmcore_perl.h"

#include <string.h>

static IV pmp_hv_iv(pTHX_ HV *o, const char *key, IV def)
{
    SV **svp = o ? hv_fetch(o, key, (I32)strlen(key), 0) : NULL;
    return svp && SvOK(*svp) ? SvIV(*svp) : def;
}

/* ctx: a Context (in-process session) or, when fd >= 0, undef and the
 * client talks to a milter over that socket (pmc_transport_fd). */
pmp_pipe *pmp_pipe_new(pTHX_ SV *ctx, int fd, HV *o)
{
    pmc_client_config cfg;
    pmp_pipe *p;

    pmc_client_config_init(&cfg, pmp_hv_iv(aTHX_ o, "sendmail", 0)
                                     ? PMC_MTA_SENDMAIL : PMC_MTA_POSTFIX);
    cfg.version = (uint32_t)pmp_hv_iv(aTHX_ o, "version", cfg.version);
    cfg.actions = (uint32_t)pmp_hv_iv(aTHX_ o, "actions", cfg.actions);
    cfg.protocol = (uint32_t)pmp_hv_iv(aTHX_ o, "protocol", cfg.protocol);
    cfg.ignore_verdicts = (int)pmp_hv_iv(aTHX_ o, "ignore_verdicts", 0);
    Newxz(p, 1, pmp_pipe);
    if (fd >= 0)
        pmc_transport_fd(&p->tr, &p->fdst, fd,
                         (int)pmp_hv_iv(aTHX_ o, "timeout_ms", 10000));
    else
        pmc_transport_session(&p->tr, pmp_open(aTHX_ pmp_ctx_get(aTHX_ ctx, 1)),
                              NULL, NULL);
    p->cl = pmc_client_new(&cfg, &p->tr);
    if (!p->cl) {
        Safefree(p);
        croak("Sendmail::PMilter::_Pipe: cannot create the client");
    }
    p->ctx = newSVsv(ctx);
    return p;
}

void pmp_pipe_free(pTHX_ pmp_pipe *p)
{
    /* Freeing the client closes the transport: abort/close run. */
    pmc_client_free(p->cl);
    SvREFCNT_dec(p->ctx);
    Safefree(p);
}

static pmc_str pmp_s(pTHX_ SV **a, int n, int i)
{
    pmc_str r = {"", 0};
    STRLEN len;
    if (i < n && SvOK(a[i])) {
        r.ptr = SvPVbyte(a[i], len);
        r.len = len;
    }
    return r;
}

static const char *pmp_c(pTHX_ SV **a, int n, int i)
{
    return i < n && SvOK(a[i]) ? SvPVbyte_nolen(a[i]) : NULL;
}

/* { status, code, text, mods => [[code, index, a, b, has_b] ...], error } */
static SV *pmp_result(pTHX_ pmp_pipe *p, pmc_status st, const pmc_result *r)
{
    HV *hv = newHV();
    AV *mods = newAV();
    char code[2] = {0, 0};
    size_t i;

    (void)hv_stores(hv, "status", newSVpv(pmc_status_name(st), 0));
    if (st == PMC_OK) {
        code[0] = (char)r->code;
        (void)hv_stores(hv, "code", newSVpv(code, 0));
        (void)hv_stores(hv, "text", newSVpvn(r->text.ptr, r->text.len));
        for (i = 0; i < r->nmods; i++) {
            const pmc_reply *m = &r->mods[i];
            AV *e = newAV();
            code[0] = (char)m->code;
            av_push(e, newSVpv(code, 0));
            av_push(e, newSVuv(m->index));
            av_push(e, newSVpvn(m->a.ptr, m->a.len));
            av_push(e, newSVpvn(m->b.ptr, m->b.len));
            av_push(e, newSViv(m->has_b));
            av_push(mods, newRV_noinc((SV *)e));
        }
    } else {
        const pmc_error *e = pmc_client_error(p->cl);
        (void)hv_stores(hv, "error", newSVpv(e ? e->message : "", 0));
    }
    (void)hv_stores(hv, "mods", newRV_noinc((SV *)mods));
    return sv_2mortal(newRV_noinc((SV *)hv));
}

#define ARGV_MAX 32

/* One MTA call of the pipe: Perl arguments a[0..n) to the client's call;
 * r gets its result. */
typedef pmc_status pmp_call_fn(pTHX_ pmc_client *cl, const char *op, SV **a,
                               int n, pmc_result *r);
#define PMP_CALL(fn) \
    static pmc_status fn(pTHX_ pmc_client *cl, const char *op, SV **a, \
                         int n, pmc_result *r)

PMP_CALL(c_negotiate)
{
    PERL_UNUSED_ARG(op); PERL_UNUSED_ARG(a); PERL_UNUSED_ARG(n);
    return pmc_client_negotiate(cl, r);
}

PMP_CALL(c_connect)
{
    const char *fam = pmp_c(aTHX_ a, n, 1);
    PERL_UNUSED_ARG(op);
    return pmc_client_connect(cl, pmp_c(aTHX_ a, n, 0), fam ? fam[0] : 'U',
                              (uint16_t)(n > 2 ? SvUV(a[2]) : 0),
                              pmp_c(aTHX_ a, n, 3), r);
}

PMP_CALL(c_helo)
{
    PERL_UNUSED_ARG(op);
    return pmc_client_helo(cl, pmp_c(aTHX_ a, n, 0), r);
}

PMP_CALL(c_envelope) /* mail, rcpt */
{
    pmc_str argv[ARGV_MAX];
    int i;

    if (n < 1 || n > ARGV_MAX)
        croak("_Pipe::%s: 1 to %d arguments", op, ARGV_MAX);
    for (i = 0; i < n; i++)
        argv[i] = pmp_s(aTHX_ a, n, i);
    return op[0] == 'm' ? pmc_client_mail(cl, argv, (size_t)n, r)
                        : pmc_client_rcpt(cl, argv, (size_t)n, r);
}

PMP_CALL(c_data)
{
    PERL_UNUSED_ARG(op); PERL_UNUSED_ARG(a); PERL_UNUSED_ARG(n);
    return pmc_client_data(cl, r);
}

PMP_CALL(c_header)
{
    PERL_UNUSED_ARG(op);
    return pmc_client_header(cl, pmp_s(aTHX_ a, n, 0), pmp_s(aTHX_ a, n, 1),
                             r);
}

PMP_CALL(c_eoh)
{
    PERL_UNUSED_ARG(op); PERL_UNUSED_ARG(a); PERL_UNUSED_ARG(n);
    return pmc_client_eoh(cl, r);
}

PMP_CALL(c_body)
{
    pmc_str b = pmp_s(aTHX_ a, n, 0);
    PERL_UNUSED_ARG(op);
    return pmc_client_body(cl, b.ptr, b.len, r);
}

PMP_CALL(c_eom)
{
    PERL_UNUSED_ARG(op); PERL_UNUSED_ARG(a); PERL_UNUSED_ARG(n);
    return pmc_client_eom(cl, r);
}

PMP_CALL(c_abort)
{
    PERL_UNUSED_ARG(op); PERL_UNUSED_ARG(a); PERL_UNUSED_ARG(n);
    PERL_UNUSED_ARG(r);
    return pmc_client_abort(cl, NULL);
}

PMP_CALL(c_unknown)
{
    PERL_UNUSED_ARG(op);
    return pmc_client_unknown(cl, pmp_c(aTHX_ a, n, 0), r);
}

PMP_CALL(c_quit)
{
    PERL_UNUSED_ARG(op); PERL_UNUSED_ARG(a); PERL_UNUSED_ARG(n);
    PERL_UNUSED_ARG(r);
    return pmc_client_quit(cl);
}

PMP_CALL(c_macros) /* stage, name, value, name, value ... */
{
    pmc_str argv[ARGV_MAX];
    int i, k = n - 1;

    PERL_UNUSED_ARG(op); PERL_UNUSED_ARG(r);
    if (n < 1 || k % 2 || k > ARGV_MAX)
        croak("_Pipe::macros: STAGE, then name/value pairs");
    for (i = 0; i < k; i++)
        argv[i] = pmp_s(aTHX_ a, n, i + 1);
    return pmc_client_set_macros(cl, (int)SvIV(a[0]), argv, (size_t)(k / 2));
}

PMP_CALL(c_message) /* from, message, rcpt... */
{
    pmc_str argv[ARGV_MAX];
    pmc_str from = pmp_s(aTHX_ a, n, 0), msg = pmp_s(aTHX_ a, n, 1);
    int i, k = n - 2;

    PERL_UNUSED_ARG(op);
    if (k < 1 || k > ARGV_MAX)
        croak("_Pipe::message: FROM, MESSAGE, RCPT...");
    for (i = 0; i < k; i++)
        argv[i] = pmp_s(aTHX_ a, n, i + 2);
    return pmc_client_message(cl, from, argv, (size_t)k, msg.ptr, msg.len,
                              r);
}
#undef PMP_CALL

/* The one table of the pipe's calls, by the names PMilter::_Pipe uses. */
static const struct pmp_call_entry {
    const char *name;
    pmp_call_fn *fn;
} pmp_calls[] = {
    {"negotiate", c_negotiate}, {"connect", c_connect},
    {"helo", c_helo},           {"mail", c_envelope},
    {"rcpt", c_envelope},       {"data", c_data},
    {"header", c_header},       {"eoh", c_eoh},
    {"body", c_body},           {"eom", c_eom},
    {"abort", c_abort},         {"unknown", c_unknown},
    {"quit", c_quit},           {"macros", c_macros},
    {"message", c_message},
};

SV *pmp_pipe_call(pTHX_ pmp_pipe *p, const char *op, SV **a, int n)
{
    const struct pmp_call_entry *e;
    pmc_result r;

    e = pmp_by_name(pmp_calls, sizeof pmp_calls / sizeof *pmp_calls,
                    sizeof *pmp_calls, op);
    if (!e)
        croak("Sendmail::PMilter::_Pipe: unknown call %s", op);
    memset(&r, 0, sizeof r);
    return pmp_result(aTHX_ p, e->fn(aTHX_ p->cl, op, a, n, &r), &r);
}
