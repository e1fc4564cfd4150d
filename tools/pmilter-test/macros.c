/* Macros: the defaults of each personality's MTA, the ones given with
 * --macro or in a script, and the filter's own lists, which limit what is
 * sent at each stage. */
#include "pmt.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const STAGE_NAMES[PMC_STAGE_COUNT] = {
    "connect", "helo", "mail", "rcpt", "data", "eom", "eoh"};

const char *pmt_stage_name(int stage)
{
    return stage >= 0 && stage < PMC_STAGE_COUNT ? STAGE_NAMES[stage] : "?";
}

int pmt_stage_from_name(const char *s)
{
    for (int i = 0; i < PMC_STAGE_COUNT; i++)
        if (strcmp(s, STAGE_NAMES[i]) == 0)
            return i;
    if (strcmp(s, "envfrom") == 0)
        return PMC_STAGE_ENVFROM;
    if (strcmp(s, "envrcpt") == 0)
        return PMC_STAGE_ENVRCPT;
    return -1;
}

static int postfix(const pmt_conv *cv)
{
    return cv->o->personality == PMC_MTA_POSTFIX;
}

static int name_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    /* "x" and "{x}" name the same macro, as libmilter reads them. */
    if (la > 2 && a[0] == '{' && a[la - 1] == '}') {
        a++;
        la -= 2;
    }
    if (lb > 2 && b[0] == '{' && b[lb - 1] == '}') {
        b++;
        lb -= 2;
    }
    return la == lb && memcmp(a, b, la) == 0;
}

static void put(pmt_strv *m, const char *name, const char *value)
{
    for (size_t i = 0; i < m->n; i += 2)
        if (name_eq(m->v[i], name)) {
            free(m->v[i + 1]);
            m->v[i + 1] = pmt_strndup(value, strlen(value));
            m->len[i + 1] = strlen(value);
            return;
        }
    pmt_strv_push(m, name, strlen(name));
    pmt_strv_push(m, value, strlen(value));
}

static void drop(pmt_strv *m, const char *name)
{
    for (size_t i = 0; i < m->n; i += 2)
        if (name_eq(m->v[i], name)) {
            free(m->v[i]);
            free(m->v[i + 1]);
            memmove(m->v + i, m->v + i + 2, (m->n - i - 2) * sizeof *m->v);
            memmove(m->len + i, m->len + i + 2,
                    (m->n - i - 2) * sizeof *m->len);
            m->n -= 2;
            return;
        }
}

int pmt_set_macro(pmt_conv *cv, int stage, const char *name,
                  const char *value)
{
    if (stage < 0 || stage >= PMC_STAGE_COUNT || !name[0])
        return -1;
    if (value) {
        drop(&cv->unset_macros[stage], name);
        put(&cv->user_macros[stage], name, value);
    } else {
        drop(&cv->user_macros[stage], name);
        put(&cv->unset_macros[stage], name, "");
    }
    return 0;
}

static void queue_id(const pmt_conv *cv, char *out, size_t n)
{
    snprintf(out, n, "4C%08X", cv->msg ? cv->msg->number : 0);
}

static void domain_of(const char *addr, char *out, size_t n)
{
    size_t len;
    const char *a = pmt_addr_bare(addr, &len), *at = memchr(a, '@', len);

    snprintf(out, n, "%.*s", at ? (int)(a + len - at - 1) : 0,
             at ? at + 1 : "");
}

/* What the personality's MTA sends by default at each stage (its default
 * macro lists, with the values a small site would have). */
static void default_macros(pmt_conv *cv, int stage, const char *addr,
                           pmt_strv *m)
{
    char qid[32], dom[256], tmp[400], bare[256];
    size_t len;
    const char *b = addr ? pmt_addr_bare(addr, &len) : "";

    if (addr)
        snprintf(bare, sizeof bare, "%.*s", (int)len, b);
    else
        bare[0] = 0;
    queue_id(cv, qid, sizeof qid);
    domain_of(bare, dom, sizeof dom);
    switch (stage) {
    case PMC_STAGE_CONNECT:
        put(m, "j", "mx.example.net");
        snprintf(tmp, sizeof tmp, "%s [%s]",
                 cv->client_name[0] ? cv->client_name : "unknown",
                 cv->client_addr);
        put(m, "_", tmp);
        if (postfix(cv)) {
            put(m, "{daemon_name}", "mx.example.net");
            put(m, "{daemon_addr}", "127.0.0.1");
            put(m, "v", "Postfix 3.7.11");
        } else {
            put(m, "{daemon_name}", "MTA");
            put(m, "{if_name}", "mx.example.net");
            put(m, "{if_addr}", "127.0.0.1");
        }
        break;
    case PMC_STAGE_ENVFROM:
        if (!postfix(cv)) /* Postfix has no queue file before RCPT */
            put(m, "i", qid);
        put(m, "{mail_addr}", bare);
        put(m, "{mail_host}", dom);
        put(m, "{mail_mailer}", postfix(cv) ? "smtp" : "esmtp");
        break;
    case PMC_STAGE_ENVRCPT:
        /* Postfix knows its queue ID once a recipient was accepted. */
        if (postfix(cv) && cv->msg)
            for (size_t i = 0; i < cv->msg->nrcpts; i++)
                if (cv->msg->rcpts[i].state == PMT_RCPT_SENT) {
                    put(m, "i", qid);
                    break;
                }
        put(m, "{rcpt_addr}", bare);
        put(m, "{rcpt_host}", dom);
        put(m, "{rcpt_mailer}", postfix(cv) ? "smtp" : "esmtp");
        break;
    case PMC_STAGE_DATA:
    case PMC_STAGE_EOH:
        if (postfix(cv))
            put(m, "i", qid);
        break;
    case PMC_STAGE_EOM:
        if (postfix(cv)) {
            put(m, "i", qid);
        } else if (cv->msg) {
            for (size_t i = 0; i < cv->msg->headers.names.n; i++)
                if (strcasecmp(cv->msg->headers.names.v[i], "Message-Id")
                    == 0) {
                    put(m, "{msg_id}", cv->msg->headers.values.v[i]);
                    break;
                }
        }
        break;
    default:
        break;
    }
}

/* The filter's macro list for a stage, when it sent one, limits what the
 * MTA sends, as Postfix and Sendmail do. */
static int wanted(const char *list, const char *name)
{
    char word[256];
    const char *p = list;

    while (*p) {
        size_t n = strcspn(p, " ,");
        if (n > 0 && n < sizeof word) {
            memcpy(word, p, n);
            word[n] = 0;
            if (name_eq(word, name))
                return 1;
        }
        p += n;
        p += strspn(p, " ,");
    }
    return 0;
}

static void stage_macros(pmt_conv *cv, int stage, const char *addr,
                         pmt_strv *m)
{
    const char *list = cv->negotiated ? pmc_client_symlist(cv->cli, stage)
                                      : NULL;
    if (cv->o->default_macros)
        default_macros(cv, stage, addr, m);
    for (size_t i = 0; i < cv->unset_macros[stage].n; i += 2)
        drop(m, cv->unset_macros[stage].v[i]);
    for (size_t i = 0; i < cv->user_macros[stage].n; i += 2)
        put(m, cv->user_macros[stage].v[i], cv->user_macros[stage].v[i + 1]);
    for (size_t i = 0; list && i < m->n;) {
        if (!wanted(list, m->v[i]))
            drop(m, m->v[i]);
        else
            i += 2;
    }
}

int pmt_load_macros(pmt_conv *cv, int stage, const char *addr,
                    pmt_strv *m)
{
    pmc_str *pairs;
    pmc_status st;

    stage_macros(cv, stage, addr, m);
    pairs = pmt_xalloc(NULL, (m->n + 1) * sizeof *pairs);
    for (size_t i = 0; i < m->n; i++)
        pairs[i] = (pmc_str){m->v[i], m->len[i]};
    st = pmc_client_set_macros(cv->cli, stage, pairs, m->n / 2);
    free(pairs);
    if (st != PMC_OK) {
        pmt_report_error(cv->rep, "macro", "%s",
                         pmc_client_error(cv->cli)->message);
        return -1;
    }
    return 0;
}
