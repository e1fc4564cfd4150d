/* The message the driver sends and the checks on the filter's replies.
 * The workload is built once and only read afterwards, so every thread
 * shares it. */
#define _GNU_SOURCE
#include "load.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pmc_str dup_str(const char *fmt, ...)
{
    pmc_str s = {NULL, 0};
    char *p = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n >= 0) {
        s.ptr = p;
        s.len = (size_t)n;
    }
    return s;
}

/* Header fields of the kind a message carries past an MTA; beyond these,
 * numbered X- fields of similar size. */
static const char *const NAMES[] = {
    "Received", "Received", "DKIM-Signature", "From", "To", "Subject",
    "Date", "Message-ID", "MIME-Version", "Content-Type",
    "Content-Transfer-Encoding", "Return-Path",
};

static const char *const VALUES[] = {
    "from mail.example.org (mail.example.org [192.0.2.10])\n\tby mx.example."
    "com (Postfix) with ESMTPS id 4Bx1Yz2Kq3; Sun, 22 Nov 2026 05:00:00 +0000",
    "from client.example.org ([198.51.100.7])\n\tby mail.example.org with "
    "ESMTPSA id a1b2c3; Sun, 22 Nov 2026 04:59:59 +0000",
    "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel1;\n\t"
    "h=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
    "\n\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgaGFzIHRoZSBzaXpl",
    "Sender Name <sender@example.org>",
    "Recipient <rcpt0@example.com>",
    "Quarterly report, draft 3",
    "Sun, 22 Nov 2026 04:59:58 +0000",
    "<20261122045958.4Bx1Yz2Kq3@mail.example.org>",
    "1.0",
    "text/plain; charset=utf-8",
    "8bit",
    "<sender@example.org>",
};

int load_workload_build(load_workload *w, const load_opts *o)
{
    static const char LINE[] =
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
        "eiusmod\r\n";
    const size_t nfixed = sizeof NAMES / sizeof NAMES[0];

    memset(w, 0, sizeof *w);
    w->from[0] = dup_str("<sender@example.org>");
    w->from[1] = dup_str("SIZE=%zu", o->body + 1024);
    w->n_rcpts = o->rcpts;
    w->n_headers = o->headers;
    w->rcpts = calloc(o->rcpts, sizeof *w->rcpts);
    w->hdr_names = calloc(o->headers ? o->headers : 1, sizeof(pmc_str));
    w->hdr_values = calloc(o->headers ? o->headers : 1, sizeof(pmc_str));
    w->body = malloc(o->body ? o->body : 1);
    if (!w->rcpts || !w->hdr_names || !w->hdr_values || !w->body)
        return -1;
    for (unsigned i = 0; i < o->rcpts; i++)
        if (!(w->rcpts[i] = dup_str("<rcpt%u@example.com>", i)).ptr)
            return -1;
    for (unsigned i = 0; i < o->headers; i++) {
        if (i < nfixed) {
            w->hdr_names[i] = dup_str("%s", NAMES[i]);
            w->hdr_values[i] = dup_str("%s", VALUES[i]);
        } else {
            w->hdr_names[i] = dup_str("X-Bench-Field-%u", i);
            w->hdr_values[i] = dup_str("value %u of a field added to make "
                                       "the header section longer", i);
        }
        if (!w->hdr_names[i].ptr || !w->hdr_values[i].ptr)
            return -1;
    }
    for (size_t off = 0; off < o->body; off += sizeof LINE - 1) {
        size_t n = o->body - off < sizeof LINE - 1 ? o->body - off
                                                   : sizeof LINE - 1;
        memcpy(w->body + off, LINE, n);
    }
    w->body_len = o->body;
    w->expect_header = o->expect_header;
    return 0;
}

void load_workload_free(load_workload *w)
{
    free((char *)w->from[0].ptr);
    free((char *)w->from[1].ptr);
    for (unsigned i = 0; w->rcpts && i < w->n_rcpts; i++)
        free((char *)w->rcpts[i].ptr);
    for (unsigned i = 0; w->hdr_names && i < w->n_headers; i++) {
        free((char *)w->hdr_names[i].ptr);
        free((char *)w->hdr_values[i].ptr);
    }
    free(w->rcpts);
    free(w->hdr_names);
    free(w->hdr_values);
    free(w->body);
    memset(w, 0, sizeof *w);
}

/* Macros as Postfix sends them with its default milter_*_macros (values a
 * plain, unauthenticated, non-TLS session has). */
static int set_macros(pmc_client *c, int stage, const char *const *kv,
                      size_t n)
{
    pmc_str pairs[16];

    for (size_t i = 0; i < 2 * n; i++) {
        pairs[i].ptr = kv[i];
        pairs[i].len = strlen(kv[i]);
    }
    return pmc_client_set_macros(c, stage, pairs, n) == PMC_OK ? 0 : -1;
}

static int set_all_macros(pmc_client *c)
{
    static const char *const conn[] = {
        "j", "mx.example.com", "{daemon_name}", "mx.example.com",
        "{daemon_addr}", "127.0.0.1", "v", "Postfix 3.7.11", "_",
        "client.example.org [192.0.2.1]"};
    static const char *const mail[] = {
        "i", "4Bx1Yz2Kq3", "{mail_addr}", "sender@example.org",
        "{mail_host}", "example.org", "{mail_mailer}", "smtp"};
    static const char *const rcpt[] = {
        "i", "4Bx1Yz2Kq3", "{rcpt_addr}", "rcpt0@example.com",
        "{rcpt_host}", "example.com", "{rcpt_mailer}", "smtp"};
    static const char *const qid[] = {"i", "4Bx1Yz2Kq3"};

    return set_macros(c, PMC_STAGE_CONNECT, conn, 5) ||
           set_macros(c, PMC_STAGE_ENVFROM, mail, 4) ||
           set_macros(c, PMC_STAGE_ENVRCPT, rcpt, 4) ||
           set_macros(c, PMC_STAGE_DATA, qid, 1) ||
           set_macros(c, PMC_STAGE_EOH, qid, 1) ||
           set_macros(c, PMC_STAGE_EOM, qid, 1);
}

static const char *client_why(const pmc_client *c)
{
    const pmc_error *e = pmc_client_error(c);

    return e ? e->message : "no detail";
}

/* 0: the step passed; otherwise as load_message. */
static int check(pmc_client *c, pmc_status st, const pmc_result *r,
                 const char *step, int final, char *err, size_t errlen)
{
    if (st != PMC_OK) {
        snprintf(err, errlen, "%s: %s: %s", step, pmc_status_name(st),
                 client_why(c));
        return 2;
    }
    if (final ? (r->code == 'c' || r->code == 'a')
              : (r->code == 0 || r->code == 'c'))
        return 0;
    if (r->code == 0)
        snprintf(err, errlen, "%s: no reply (the message ended earlier)",
                 step);
    else
        snprintf(err, errlen, "%s: unexpected reply '%c'%s%.*s", step,
                 r->code, r->text.len ? " " : "", (int)r->text.len,
                 r->text.ptr);
    return 1;
}

pmc_client *load_session_open(const load_opts *o, const pmc_transport *tr,
                              char *err, size_t errlen)
{
    pmc_client_config cfg;
    pmc_client *c;
    pmc_result r;
    pmc_status st;
    int rc;

    pmc_client_config_init(&cfg, o->personality);
    c = pmc_client_new(&cfg, tr);
    if (!c) {
        snprintf(err, errlen, "out of memory creating a client");
        return NULL;
    }
    if (set_all_macros(c)) {
        snprintf(err, errlen, "setting macros: %s", client_why(c));
        goto fail;
    }
    st = pmc_client_negotiate(c, &r);
    if (st != PMC_OK || r.code != 'O') {
        snprintf(err, errlen, "OPTNEG: %s: %s", pmc_status_name(st),
                 client_why(c));
        goto fail;
    }
    st = pmc_client_connect(c, "client.example.org", '4', 54321, "192.0.2.1",
                            &r);
    if ((rc = check(c, st, &r, "CONNECT", 0, err, errlen)) != 0)
        goto fail;
    st = pmc_client_helo(c, "client.example.org", &r);
    if ((rc = check(c, st, &r, "HELO", 0, err, errlen)) != 0)
        goto fail;
    return c;
fail:
    pmc_client_free(c);
    return NULL;
}

static int has_header(const pmc_result *r, const char *name)
{
    for (size_t i = 0; i < r->nmods; i++)
        if (r->mods[i].code == 'h' && r->mods[i].a.len == strlen(name) &&
            strncasecmp(r->mods[i].a.ptr, name, r->mods[i].a.len) == 0)
            return 1;
    return 0;
}

int load_message(pmc_client *c, const load_workload *w, char *err,
                 size_t errlen)
{
    pmc_result r;
    pmc_status st;
    int rc;

#define STEP(call, name, final)                                            \
    do {                                                                   \
        st = (call);                                                       \
        if ((rc = check(c, st, &r, (name), (final), err, errlen)) != 0)    \
            return rc;                                                     \
    } while (0)

    STEP(pmc_client_mail(c, w->from, 2, &r), "MAIL", 0);
    for (unsigned i = 0; i < w->n_rcpts; i++)
        STEP(pmc_client_rcpt(c, &w->rcpts[i], 1, &r), "RCPT", 0);
    STEP(pmc_client_data(c, &r), "DATA", 0);
    for (unsigned i = 0; i < w->n_headers; i++)
        STEP(pmc_client_header(c, w->hdr_names[i], w->hdr_values[i], &r),
             "HEADER", 0);
    STEP(pmc_client_eoh(c, &r), "EOH", 0);
    if (w->body_len)
        STEP(pmc_client_body(c, w->body, w->body_len, &r), "BODY", 0);
    STEP(pmc_client_eom(c, &r), "EOM", 1);
#undef STEP
    if (w->expect_header && !has_header(&r, w->expect_header)) {
        snprintf(err, errlen, "EOM: no add-header %s among %zu "
                              "modification(s)", w->expect_header, r.nmods);
        return 1;
    }
    return 0;
}
