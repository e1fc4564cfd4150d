/*
 * vecact.c - the actions of a vector's script ('on' and 'act' lines,
 * tests/vectors/README.md), each a call of one pmc_session function.
 */
#include "vecact.h"

#include <stdlib.h>
#include <string.h>

static int is_dash(const vtok *t)
{
    return t->type == VT_WORD && strcmp((const char *)t->bytes, "-") == 0;
}

/* A string argument; with 'nullable', '-' gives NULL. */
static int arg_cstr(const vtok *t, int nullable, const char **out)
{
    if (nullable && is_dash(t)) {
        *out = NULL;
        return 0;
    }
    if (t->type != VT_STR)
        return -1;
    *out = (const char *)t->bytes;
    return 0;
}

static int arg_str(const vtok *t, pmc_str *out)
{
    if (t->type != VT_STR)
        return -1;
    out->ptr = (const char *)t->bytes;
    out->len = t->len;
    return 0;
}

static int arg_u32(const vtok *t, uint32_t *out)
{
    if (t->type != VT_NUM || t->num < 0 || t->num > 0xFFFFFFFFll)
        return -1;
    *out = (uint32_t)t->num;
    return 0;
}

/* NULL-able ESMTP argument string. */
static int arg_args(const vtok *t, pmc_str *buf, const pmc_str **out)
{
    if (is_dash(t)) {
        *out = NULL;
        return 0;
    }
    *out = buf;
    return arg_str(t, buf);
}

static void do_getsymval(pmc_session *s, vlog *g, const vtok *name)
{
    pmc_str v;
    int found = pmc_session_getsymval(s, (const char *)name->bytes,
                                      name->len, &v);
    vline *l = vlog_line(g, "symval");
    vlog_str(g, l, name->bytes, name->len);
    if (found)
        vlog_str(g, l, v.ptr, v.len);
    else
        vlog_word(g, l, "none");
}

static int do_setmlreply(pmc_session *s, vlog *g, const vline *a,
                         pmc_status *st)
{
    const char *rcode, *xcode;
    if (a->n < 3 || arg_cstr(&a->t[1], 0, &rcode) ||
        arg_cstr(&a->t[2], 1, &xcode))
        return -1;
    size_t n = a->n - 3;
    const char **lines = malloc((n ? n : 1) * sizeof *lines);
    if (!lines) {
        g->oom = 1;
        *st = PMC_OK;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (arg_cstr(&a->t[3 + i], 0, &lines[i])) {
            free(lines);
            return -1;
        }
    *st = pmc_session_setmlreply(s, rcode, xcode, lines, n);
    free(lines);
    return 0;
}

int vec_action(pmc_session *s, vlog *g, pmc_negotiation *neg, const vline *a)
{
    const char *w = (const char *)a->t[0].bytes;
    const vtok *t = a->t + 1;
    size_t n = a->n - 1;
    pmc_status st = PMC_OK;
    pmc_str s1, s2, s3, argbuf;
    const pmc_str *args;
    const char *c1, *c2, *c3;
    uint32_t u;

    if (a->t[0].type != VT_WORD)
        return -1;
    if (strcmp(w, "setreply") == 0) {
        if (n != 3 || arg_cstr(&t[0], 0, &c1) || arg_cstr(&t[1], 1, &c2) ||
            arg_cstr(&t[2], 1, &c3))
            return -1;
        st = pmc_session_setreply(s, c1, c2, c3);
    } else if (strcmp(w, "setmlreply") == 0) {
        if (do_setmlreply(s, g, a, &st))
            return -1;
    } else if (strcmp(w, "addheader") == 0) {
        if (n != 2 || arg_str(&t[0], &s1) || arg_str(&t[1], &s2))
            return -1;
        st = pmc_session_addheader(s, s1, s2);
    } else if (strcmp(w, "insheader") == 0) {
        if (n != 3 || arg_u32(&t[0], &u) || arg_str(&t[1], &s1) ||
            arg_str(&t[2], &s2))
            return -1;
        st = pmc_session_insheader(s, u, s1, s2);
    } else if (strcmp(w, "chgheader") == 0) {
        if (n != 3 || arg_str(&t[0], &s1) || arg_u32(&t[1], &u) ||
            arg_str(&t[2], &s2))
            return -1;
        st = pmc_session_chgheader(s, s1, u, s2);
    } else if (strcmp(w, "addrcpt") == 0) {
        if (n != 1 || arg_str(&t[0], &s1))
            return -1;
        st = pmc_session_addrcpt(s, s1);
    } else if (strcmp(w, "addrcpt_par") == 0) {
        if (n != 2 || arg_str(&t[0], &s1) || arg_args(&t[1], &argbuf, &args))
            return -1;
        st = pmc_session_addrcpt_par(s, s1, args);
    } else if (strcmp(w, "delrcpt") == 0) {
        if (n != 1 || arg_str(&t[0], &s1))
            return -1;
        st = pmc_session_delrcpt(s, s1);
    } else if (strcmp(w, "chgfrom") == 0) {
        if (n != 2 || arg_str(&t[0], &s1) || arg_args(&t[1], &argbuf, &args))
            return -1;
        st = pmc_session_chgfrom(s, s1, args);
    } else if (strcmp(w, "replacebody") == 0) {
        if (n != 1 || arg_str(&t[0], &s3))
            return -1;
        st = pmc_session_replacebody(s, s3.ptr, s3.len);
    } else if (strcmp(w, "quarantine") == 0) {
        if (n != 1 || arg_str(&t[0], &s1))
            return -1;
        st = pmc_session_quarantine(s, s1);
    } else if (strcmp(w, "progress") == 0) {
        if (n != 0)
            return -1;
        st = pmc_session_progress(s);
    } else if (strcmp(w, "getsymval") == 0) {
        if (n != 1 || t[0].type != VT_STR)
            return -1;
        do_getsymval(s, g, &t[0]);
    } else if (strcmp(w, "setsymlist") == 0) {
        if (n != 2 || arg_u32(&t[0], &u) || arg_cstr(&t[1], 1, &c1))
            return -1;
        st = pmc_session_setsymlist(s, (int)u, c1);
    } else if (strcmp(w, "negotiate") == 0) {
        uint32_t ver, act, proto;
        if (n != 3 || !neg || arg_u32(&t[0], &ver) ||
            arg_u32(&t[1], &act) || arg_u32(&t[2], &proto))
            return -1;
        neg->version = ver;
        neg->actions = act;
        neg->protocol = proto;
    } else {
        return -1;
    }
    if (st != PMC_OK)
        vlog_fail(g, w, st);
    return 0;
}
