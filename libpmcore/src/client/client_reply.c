/* Client: judging and decoding one reply packet from the filter, the way
 * an MTA would (strictly: what Sendmail or Postfix would refuse is an
 * error, and so is what the session must never send). */
#include "internal_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *show(uint8_t code, char buf[16])
{
    if (code >= 0x21 && code < 0x7f)
        snprintf(buf, 16, "'%c'", code);
    else
        snprintf(buf, 16, "0x%02x", code);
    return buf;
}

static pmc_status bad(pmc_client *c, const pmc_packet *pkt, const char *what)
{
    char b[16];

    return pmci_cli_fail(c, PMC_ERR_BAD_REPLY, pkt->offset,
                         "reply %s at offset %llu: %s", show(pkt->cmd, b),
                         (unsigned long long)pkt->offset, what);
}

/* The action bit a modification needs; 0 for codes that are none. */
static uint32_t action_of(uint8_t code)
{
    switch (code) {
    case 'h': case 'i': return PMC_ACT_ADDHDRS;
    case 'm': return PMC_ACT_CHGHDRS;
    case 'b': return PMC_ACT_CHGBODY;
    case '+': return PMC_ACT_ADDRCPT;
    case '-': return PMC_ACT_DELRCPT;
    case 'e': return PMC_ACT_CHGFROM;
    case '2': return PMC_ACT_ADDRCPT_PAR;
    case 'q': return PMC_ACT_QUARANTINE;
    default: return 0;
    }
}

/* Postfix skips "further events of this type" for any event it waits on;
 * Sendmail only understands SKIP during the body. */
static int skippable(const pmc_client *c, uint8_t cmd)
{
    if (cmd == 'B')
        return 1;
    return c->cfg.personality == PMC_MTA_POSTFIX &&
           strchr("CHMRTLNU", cmd) != NULL;
}

/* Length of the NUL-terminated string at p (n bytes), or n if unended. */
static size_t str_end(const uint8_t *p, size_t n)
{
    const uint8_t *z = n ? memchr(p, 0, n) : NULL;

    return z ? (size_t)(z - p) : n;
}

pmc_status pmci_cli_store(pmc_client *c, const void *p, size_t n,
                          size_t *off)
{
    static const uint8_t nul = 0;

    *off = c->store.len;
    /* Every handed-out string ends in NUL, as the header promises. */
    if (pmc_buf_append(&c->store, p, n) != PMC_OK ||
        pmc_buf_append(&c->store, &nul, 1) != PMC_OK)
        return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                             "out of memory storing a reply");
    return PMC_OK;
}

static pmc_status keep(pmc_client *c, const uint8_t *p, size_t n,
                       pmc_str *s, size_t *off)
{
    s->len = n;
    return pmci_cli_store(c, p, n, off);
}

/* Decode the payload shape of a modification into m. */
static pmc_status shape(pmc_client *c, const pmc_packet *pkt,
                        pmci_cli_mod *m)
{
    const uint8_t *p = pkt->payload;
    size_t n = pkt->len, i;

    switch (pkt->cmd) {
    case 'p':
        return n == 0 ? PMC_OK : bad(c, pkt, "PROGRESS carries a payload");
    case 'b':
        return keep(c, p, n, &m->r.a, &m->a_off);
    case 'i':
    case 'm':
        if (n < 4)
            return bad(c, pkt, "the payload is shorter than its index");
        m->r.index = pmci_get32(p);
        p += 4;
        n -= 4;
        /* fall through */
    case 'h':
        /* name\0value\0: the value is everything up to the final NUL */
        i = str_end(p, n);
        if (i + 1 >= n || p[n - 1] != 0)
            return bad(c, pkt, "the payload is not name\\0value\\0");
        m->r.has_b = 1;
        if (keep(c, p, i, &m->r.a, &m->a_off) != PMC_OK)
            return c->err.code;
        return keep(c, p + i + 1, n - i - 2, &m->r.b, &m->b_off);
    case 'e':
    case '2':
        i = str_end(p, n);
        if (i == n)
            return bad(c, pkt, "the address is not NUL-terminated");
        if (keep(c, p, i, &m->r.a, &m->a_off) != PMC_OK)
            return c->err.code;
        if (i + 1 == n)
            return PMC_OK;
        p += i + 1;
        n -= i + 1;
        if (str_end(p, n) != n - 1)
            return bad(c, pkt, "the ESMTP arguments are not one "
                               "NUL-terminated string");
        m->r.has_b = 1;
        return keep(c, p, n - 1, &m->r.b, &m->b_off);
    default: /* '+', '-', 'q': one string filling the payload */
        if (n == 0 || str_end(p, n) != n - 1)
            return bad(c, pkt, "the payload is not one NUL-terminated "
                               "string");
        return keep(c, p, n - 1, &m->r.a, &m->a_off);
    }
}

static pmc_status add_mod(pmc_client *c, uint8_t cmd, const pmc_packet *pkt)
{
    pmci_cli_mod m;
    uint32_t need = action_of(pkt->cmd);
    pmc_status st;

    if (pkt->cmd != 'p') {
        int anywhere = pkt->cmd == 'q' &&
                       c->cfg.personality == PMC_MTA_POSTFIX;
        if (cmd != 'E' && !anywhere)
            return bad(c, pkt, "modifications are only allowed at end of "
                               "message");
        if (!(c->actions & need))
            return bad(c, pkt, "the filter did not negotiate the action "
                               "this modification needs");
        if (c->cfg.personality == PMC_MTA_POSTFIX) {
            /* Postfix cannot mix body replacement with other edits. */
            if (pkt->cmd == 'b' && c->body_run == 2)
                return bad(c, pkt, "body replacement packets are not one "
                                   "contiguous run");
            if (pkt->cmd == 'b')
                c->body_run = 1;
            else if (c->body_run == 1)
                c->body_run = 2;
        }
    }
    memset(&m, 0, sizeof m);
    m.r.code = pkt->cmd;
    m.a_off = m.b_off = PMCI_CLI_NONE;
    st = shape(c, pkt, &m);
    if (st != PMC_OK)
        return st;
    if (c->npend == c->cap_pend) {
        size_t cap = c->cap_pend ? 2 * c->cap_pend : 8;
        pmci_cli_mod *p = realloc(c->pend, cap * sizeof *p);
        if (p == NULL)
            return pmci_cli_fail(c, PMC_ERR_NOMEM, pkt->offset,
                                 "out of memory collecting modifications");
        c->pend = p;
        c->cap_pend = cap;
    }
    c->pend[c->npend++] = m;
    return PMC_OK;
}

/* "ddd " or "ddd-" with a 4xx or 5xx code, as Postfix checks it. */
static pmc_status reply_text(pmc_client *c, const pmc_packet *pkt,
                             pmc_result *r)
{
    const uint8_t *p = pkt->payload;
    size_t n = pkt->len;

    if (n == 0 || str_end(p, n) != n - 1)
        return bad(c, pkt, "the text is not one NUL-terminated string");
    if (n < 5 || (p[0] != '4' && p[0] != '5') || p[1] < '0' || p[1] > '9' ||
        p[2] < '0' || p[2] > '9' || (p[3] != ' ' && p[3] != '-'))
        return bad(c, pkt, "the text does not start with a 4xx or 5xx code "
                           "and a space or hyphen");
    r->text.len = n - 1;
    return pmci_cli_store(c, p, n - 1, &c->text_off);
}

pmc_status pmci_cli_reply(pmc_client *c, uint8_t cmd, const pmc_packet *pkt,
                          int *final, pmc_result *r)
{
    pmc_status st;

    *final = 0;
    if (pkt->cmd == 'p')
        return add_mod(c, cmd, pkt);
    if (cmd == 'O') {
        if (pkt->cmd != 'O')
            return bad(c, pkt, "the answer to OPTNEG must be 'O'");
        st = pmci_cli_optneg_reply(c, pkt);
        if (st == PMC_OK) {
            r->code = 'O';
            *final = 1;
        }
        return st;
    }
    switch (pkt->cmd) {
    case 'c': case 'a': case 'r': case 't': case 'd':
        if (pkt->len != 0)
            return bad(c, pkt, "this reply carries no payload");
        break;
    case 'y':
        if ((st = reply_text(c, pkt, r)) != PMC_OK)
            return st;
        break;
    case 's':
        if (!(c->protocol & PMC_P_SKIP))
            return bad(c, pkt, "SKIP was not negotiated");
        if (!skippable(c, cmd))
            return bad(c, pkt, c->cfg.personality == PMC_MTA_POSTFIX
                                   ? "SKIP is not a valid answer to this "
                                     "command"
                                   : "Sendmail takes SKIP only for a "
                                     "body chunk");
        if (pkt->len != 0)
            return bad(c, pkt, "this reply carries no payload");
        break;
    case '4':
        if (c->cfg.personality != PMC_MTA_POSTFIX)
            return bad(c, pkt, "Sendmail does not take SHUTDOWN from a "
                               "filter");
        break;
    case 'h': case 'i': case 'm': case 'e': case '+': case '-': case '2':
    case 'b': case 'q':
        return add_mod(c, cmd, pkt);
    case 'O':
        return bad(c, pkt, "'O' answers only OPTNEG");
    default:
        return bad(c, pkt, "this is not a reply code an MTA knows");
    }
    r->code = pkt->cmd;
    *final = 1;
    return PMC_OK;
}

/* "c.s.d" with runs of digits of any length: how an MTA reading the
 * reply tells an enhanced code from the first word of the text. */
static int xcode_word(const char *p, size_t n)
{
    size_t runs = 0, len = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '.') {
            if (len == 0 || ++runs > 3)
                return 0;
            len = 0;
        } else if (p[i] >= '0' && p[i] <= '9') {
            len++;
        } else {
            return 0;
        }
    }
    return runs == 3;
}

int pmc_reply_next_line(pmc_str reply, size_t *cursor, pmc_str *rcode,
                        pmc_str *xcode, pmc_str *text)
{
    const char *p, *sp;
    size_t at = *cursor, n, i = 0, len;

    /* Past the end once the last line was given: reply.len + 1. */
    if (at > reply.len)
        return 0;
    p = reply.ptr != NULL ? reply.ptr + at : "";
    n = reply.len - at;
    while (i + 1 < n && !(p[i] == '\r' && p[i + 1] == '\n'))
        i++;
    if (i + 1 < n) {
        len = i;
        *cursor = at + i + 2;
    } else {
        len = n;
        *cursor = reply.len + 1;
    }
    rcode->ptr = p;
    rcode->len = len < 3 ? len : 3;
    text->ptr = p + (len < 4 ? len : 4);
    text->len = len - (size_t)(text->ptr - p);
    xcode->ptr = text->ptr;
    xcode->len = 0;
    sp = memchr(text->ptr, ' ', text->len);
    n = sp != NULL ? (size_t)(sp - text->ptr) : text->len;
    if (xcode_word(text->ptr, n)) {
        xcode->len = n;
        n += sp != NULL;
        text->ptr += n;
        text->len -= n;
    }
    return 1;
}
