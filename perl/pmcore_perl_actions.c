/*
 * pmcore_perl_actions.c - Context actions and macros, as
 * conversions from Perl values to the core's calls.  The 1.27 argument
 * checks and die texts are in Context.pm; the core decides everything that
 * concerns the protocol (stage, negotiated actions, reply text, chunking).
 */
#include "pmcore_perl.h"

#include <string.h>

/* Byte string of an argument; undef (or a missing one) gives NULL ptr.
 * SvPVbyte croaks on wide characters before anything is queued, which is
 * the fix for 1.27's corrupted stream. */
static pmc_str pmp_str(pTHX_ SV **a, int n, int i)
{
    pmc_str r = {NULL, 0};
    STRLEN len;

    if (i < n && SvOK(a[i])) {
        r.ptr = SvPVbyte(a[i], len);
        r.len = len;
    }
    return r;
}

/* A C string for the calls that take one; sets *bad on an interior NUL. */
static const char *pmp_cstr(pTHX_ SV **a, int n, int i, int *bad)
{
    pmc_str s = pmp_str(aTHX_ a, n, i);
    if (s.ptr && strlen(s.ptr) != s.len)
        *bad = 1;
    return s.ptr;
}

static SV *pmp_fail(pTHX_ pmp_ctx *c, pmc_status st)
{
    const pmc_error *e = c->s ? pmc_session_action_error(c->s) : NULL;
    const char *msg = e && e->code == st ? e->message : pmc_status_name(st);
    return sv_2mortal(newSVpvf("%s (%s)", msg, pmc_status_name(st)));
}

static uint32_t pmp_u32(pTHX_ SV **a, int n, int i)
{
    return i < n && SvOK(a[i]) ? (uint32_t)SvUV(a[i]) : 0;
}

/* One action: Perl arguments a[0..n) to the core's call.  *bad is set on
 * a NUL inside a string the core takes as a C string. */
typedef pmc_status pmp_action_fn(pTHX_ pmc_session *s, SV **a, int n,
                                 int *bad);

static pmc_status a_setreply(pTHX_ pmc_session *s, SV **a, int n, int *bad)
{
    const char *rc = pmp_cstr(aTHX_ a, n, 0, bad);
    const char *xc = pmp_cstr(aTHX_ a, n, 1, bad);
    const char *tx = pmp_cstr(aTHX_ a, n, 2, bad);
    return *bad ? PMC_ERR_ARGUMENT : pmc_session_setreply(s, rc, xc, tx);
}

static pmc_status a_setmlreply(pTHX_ pmc_session *s, SV **a, int n, int *bad)
{
    const char *lines[PMC_REPLY_LINES_MAX];
    int i, k = n - 2;

    if (k < 1 || k > (int)PMC_REPLY_LINES_MAX)
        return PMC_ERR_REPLY_TEXT;
    for (i = 0; i < k; i++) {
        lines[i] = pmp_cstr(aTHX_ a, n, i + 2, bad);
        if (!lines[i])
            lines[i] = "";
    }
    if (*bad)
        return PMC_ERR_ARGUMENT;
    return pmc_session_setmlreply(s, pmp_cstr(aTHX_ a, n, 0, bad),
                                  pmp_cstr(aTHX_ a, n, 1, bad), lines,
                                  (size_t)k);
}

static pmc_status a_addheader(pTHX_ pmc_session *s, SV **a, int n, int *bad)
{
    PERL_UNUSED_ARG(bad);
    return pmc_session_addheader(s, pmp_str(aTHX_ a, n, 0),
                                 pmp_str(aTHX_ a, n, 1));
}

static pmc_status a_insheader(pTHX_ pmc_session *s, SV **a, int n, int *bad)
{
    PERL_UNUSED_ARG(bad);
    return pmc_session_insheader(s, pmp_u32(aTHX_ a, n, 0),
                                 pmp_str(aTHX_ a, n, 1),
                                 pmp_str(aTHX_ a, n, 2));
}

static pmc_status a_chgheader(pTHX_ pmc_session *s, SV **a, int n, int *bad)
{
    pmc_str y = pmp_str(aTHX_ a, n, 2);
    PERL_UNUSED_ARG(bad);
    if (!y.ptr)
        y.ptr = ""; /* undef deletes the header */
    return pmc_session_chgheader(s, pmp_str(aTHX_ a, n, 0),
                                 pmp_u32(aTHX_ a, n, 1), y);
}

static pmc_status a_addrcpt(pTHX_ pmc_session *s, SV **a, int n, int *bad)
{
    PERL_UNUSED_ARG(bad);
    return pmc_session_addrcpt(s, pmp_str(aTHX_ a, n, 0));
}

static pmc_status a_addrcpt_par(pTHX_ pmc_session *s, SV **a, int n,
                                int *bad)
{
    pmc_str y = pmp_str(aTHX_ a, n, 1);
    PERL_UNUSED_ARG(bad);
    return pmc_session_addrcpt_par(s, pmp_str(aTHX_ a, n, 0),
                                   y.ptr ? &y : NULL);
}

static pmc_status a_delrcpt(pTHX_ pmc_session *s, SV **a, int n, int *bad)
{
    PERL_UNUSED_ARG(bad);
    return pmc_session_delrcpt(s, pmp_str(aTHX_ a, n, 0));
}

static pmc_status a_chgfrom(pTHX_ pmc_session *s, SV **a, int n, int *bad)
{
    pmc_str y = pmp_str(aTHX_ a, n, 1);
    PERL_UNUSED_ARG(bad);
    return pmc_session_chgfrom(s, pmp_str(aTHX_ a, n, 0), y.ptr ? &y : NULL);
}

static pmc_status a_replacebody(pTHX_ pmc_session *s, SV **a, int n,
                                int *bad)
{
    pmc_str x = pmp_str(aTHX_ a, n, 0);
    PERL_UNUSED_ARG(bad);
    return pmc_session_replacebody(s, x.ptr ? x.ptr : "", x.len);
}

static pmc_status a_quarantine(pTHX_ pmc_session *s, SV **a, int n,
                               int *bad)
{
    pmc_str x = pmp_str(aTHX_ a, n, 0);
    PERL_UNUSED_ARG(bad);
    if (!x.ptr)
        x.ptr = "";
    return pmc_session_quarantine(s, x);
}

static pmc_status a_progress(pTHX_ pmc_session *s, SV **a, int n, int *bad)
{
    PERL_UNUSED_ARG(a);
    PERL_UNUSED_ARG(n);
    PERL_UNUSED_ARG(bad);
    return pmc_session_progress(s);
}

static pmc_status a_setsymlist(pTHX_ pmc_session *s, SV **a, int n,
                               int *bad)
{
    const char *l = pmp_cstr(aTHX_ a, n, 1, bad);
    return *bad ? PMC_ERR_ARGUMENT
                : pmc_session_setsymlist(s, (int)pmp_u32(aTHX_ a, n, 0), l);
}

/* The one table of context actions: the name Context.pm's _do and
 * write_packet pass, and the conversion that calls the core. */
static const struct pmp_action_entry {
    const char *name;
    pmp_action_fn *fn;
} pmp_actions[] = {
    {"setreply", a_setreply},       {"setmlreply", a_setmlreply},
    {"addheader", a_addheader},     {"insheader", a_insheader},
    {"chgheader", a_chgheader},     {"addrcpt", a_addrcpt},
    {"addrcpt_par", a_addrcpt_par}, {"delrcpt", a_delrcpt},
    {"chgfrom", a_chgfrom},         {"replacebody", a_replacebody},
    {"quarantine", a_quarantine},   {"progress", a_progress},
    {"setsymlist", a_setsymlist},
};

SV *pmp_action(pTHX_ pmp_ctx *c, const char *op, SV **a, int n)
{
    const struct pmp_action_entry *e;
    pmc_status st;
    int bad = 0;

    if (!c->s)
        return sv_2mortal(newSVpvf("%s: no milter conversation is running "
                                   "(CLOSED)", op));
    e = pmp_by_name(pmp_actions, sizeof pmp_actions / sizeof *pmp_actions,
                    sizeof *pmp_actions, op);
    if (!e)
        croak("Sendmail::PMilter::Context: unknown action %s", op);
    /* Context.pm keeps the text in {reply}, which pmp_call deletes after
     * the callback: only after a callback that set one. */
    if (e->fn == a_setreply || e->fn == a_setmlreply)
        c->reply_set = 1;
    st = e->fn(aTHX_ c->s, a, n, &bad);
    if (st == PMC_OK)
        return NULL;
    if (bad)
        return sv_2mortal(newSVpvf("%s: a string holds a NUL byte "
                                   "(ARGUMENT)", op));
    return pmp_fail(aTHX_ c, st);
}

/* 1.27 stage letters in its getsymval order: earliest stage first. */
static const char pmp_letters[] = "CHMRTNE";

static int pmp_stage_of(int letter)
{
    switch (letter) {
    case 'C': return PMC_STAGE_CONNECT;
    case 'H': return PMC_STAGE_HELO;
    case 'M': return PMC_STAGE_ENVFROM;
    case 'R': return PMC_STAGE_ENVRCPT;
    case 'T': return PMC_STAGE_DATA;
    case 'N': return PMC_STAGE_EOH;
    case 'E': return PMC_STAGE_EOM;
    }
    return -1;
}

/* A macro of one stage: by its exact name, or with 'same' by the core's
 * rule of macro names (pmc_macro_name). */
static int pmp_find(const pmc_session *s, int stage, pmc_str name, int same,
                    pmc_str *value)
{
    size_t cur = 0;
    pmc_str k, v;

    if (same)
        name = pmc_macro_name(name);
    while (pmc_session_macro_next(s, stage, &cur, &k, &v)) {
        if (same)
            k = pmc_macro_name(k);
        if (k.len == name.len && memcmp(k.ptr, name.ptr, name.len) == 0) {
            *value = v;
            return 1;
        }
    }
    return 0;
}

/* 1.27's lookup (stages C H M R T N E, exact name), then the core's rule
 * of names ("x" is "{x}") as libmilter has it, which 1.27 lacked. */
SV *pmp_getsymval(pTHX_ pmp_ctx *c, SV *namesv)
{
    STRLEN len;
    pmc_str name, v;
    int i, same;

    if (!c->s || !SvOK(namesv))
        return &PL_sv_undef;
    name.ptr = SvPVbyte(namesv, len);
    name.len = len;
    if (!c->compat) /* libmilter's lookup: latest stage first */
        return pmc_session_getsymval(c->s, name.ptr, name.len, &v)
                   ? sv_2mortal(newSVpvn(v.ptr, v.len)) : &PL_sv_undef;
    for (same = 0; same < 2; same++)
        for (i = 0; pmp_letters[i]; i++)
            if (pmp_find(c->s, pmp_stage_of(pmp_letters[i]), name, same, &v))
                return sv_2mortal(newSVpvn(v.ptr, v.len));
    return &PL_sv_undef;
}

/* A snapshot of one stage's macros for $ctx->{symbols}{LETTER}. */
SV *pmp_stage_macros(pTHX_ pmp_ctx *c, int letter)
{
    int stage = pmp_stage_of(letter);
    size_t cur = 0;
    pmc_str k, v;
    HV *hv;

    if (!c->s || stage < 0)
        return &PL_sv_undef;
    hv = newHV();
    while (pmc_session_macro_next(c->s, stage, &cur, &k, &v))
        (void)hv_store(hv, k.ptr, (I32)k.len, newSVpvn(v.ptr, v.len), 0);
    if (HvUSEDKEYS(hv) == 0) {
        SvREFCNT_dec((SV *)hv);
        return &PL_sv_undef;
    }
    return sv_2mortal(newRV_noinc((SV *)hv));
}

/* 1.27's checks before a modification (Context.pm's _eom_flag): in 1.27
 * mode (no {pmcore}, or its compat set) the method must run inside eom
 * and, unless FLAGNAME is NULL, FLAG must be in {callback_flags}.  Croaks
 * with 1.27's texts.  In C because addheader, run for every message, is;
 * the trip through Perl helpers cost more than the action itself. */
void pmp_eom_flag(pTHX_ SV *ctx, const char *name, UV flag,
                  const char *flagname)
{
    pmp_ctx *c = pmp_ctx_get(aTHX_ ctx, 0);
    HV *hv;
    SV **svp, *cb;
    int compat = 1;

    if (!SvROK(ctx) || SvTYPE(SvRV(ctx)) != SVt_PVHV)
        croak("Not a HASH reference");
    hv = (HV *)SvRV(ctx);
    /* An attached Context knows its mode and holds the SV of {cb}: no
     * hash lookups for what addheader checks on every message. */
    if (c) {
        compat = c->compat;
    } else {
        svp = hv_fetchs(hv, "pmcore", 0);
        if (svp && SvTRUE(*svp) && SvROK(*svp) &&
            SvTYPE(SvRV(*svp)) == SVt_PVHV) {
            SV **cp = hv_fetchs((HV *)SvRV(*svp), "compat", 0);
            compat = cp && SvTRUE(*cp);
        }
    }
    if (!compat)
        return;
    if (c && c->cb_sv && SvREFCNT(c->cb_sv) >= 2) {
        cb = c->cb_sv; /* still the hash's value (see pmp_call) */
    } else {
        svp = hv_fetchs(hv, "cb", 0);
        cb = svp ? *svp : NULL;
    }
    if (!cb || !SvOK(cb) || !strEQ(SvPV_nolen(cb), "eom"))
        croak("%s: called outside of EOM\n", name);
    if (!flagname) /* progress, insheader: EOM only */
        return;
    svp = hv_fetchs(hv, "callback_flags", 0);
    if (!(svp && SvTRUE(*svp) && (SvUV(*svp) & flag)))
        croak("%s: SMFIF_%s not in capability list\n", name, flagname);
}

/* Die as Context.pm's _do does for a failed action: $ERROR gets the
 * reason. */
void pmp_action_die(pTHX_ const char *op, SV *err)
{
    /* NOSTEAL: err is a mortal, whose buffer sv_setsv would take. */
    sv_setsv_flags(get_sv("Sendmail::PMilter::Context::ERROR", GV_ADD), err,
                   SV_GMAGIC | SV_NOSTEAL);
    croak("%s: %" SVf "\n", op, SVfARG(err));
}
