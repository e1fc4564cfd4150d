/* One whole message from RFC 5322 text: the splitter that owns how text
 * becomes header fields and a body (docs/message-splitting.md), and the
 * client convenience that sends them as an MTA would. */
#include "internal_client.h"

#include <string.h>

/* A verdict ended the message or the connection: the MTA stops here. */
static int ended(const pmc_client *c)
{
    pmc_client_state_info s;

    pmc_client_state(c, &s);
    return s.message_ended || s.connection_ended;
}

/* ---- the splitter ---------------------------------------------------- */

/* One line from pos: [*start, *start + *n) without its line end; *next is
 * where the following line starts.  0 at the end of the text.  A CR counts
 * as part of the line end only right before the LF, or as the last byte of
 * the text (the half of a CR LF whose LF was lost). */
static int line_at(const pmc_msg_split *sp, size_t pos, size_t *n,
                   size_t *next)
{
    const char *s = sp->msg + pos, *nl;
    size_t left = sp->len - pos;

    if (left == 0)
        return 0;
    nl = memchr(s, '\n', left);
    *n = nl ? (size_t)(nl - s) : left;
    *next = pos + *n + (nl != NULL);
    if (*n > 0 && s[*n - 1] == '\r')
        (*n)--;
    return 1;
}

/* The length of the field name that starts line l, or 0 when the line is
 * not a field.  Postfix and Sendmail agree on this shape: printable ASCII
 * up to optional blanks and the colon; a blank inside the name, a control
 * or 8-bit byte, or no name at all makes a body line instead. */
static size_t name_len(const char *l, size_t n, size_t *colon)
{
    size_t i = 0, end;

    while (i < n && l[i] > ' ' && l[i] < 0x7f && l[i] != ':')
        i++;
    end = i;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    if (end == 0 || i == n || l[i] != ':')
        return 0;
    *colon = i;
    return end;
}

void pmc_msg_split_init(pmc_msg_split *sp, const void *msg, size_t len,
                        int leadspc)
{
    size_t n, next, colon;

    memset(sp, 0, sizeof *sp);
    sp->msg = msg ? msg : "";
    sp->len = msg ? len : 0;
    sp->leadspc = leadspc != 0;
    /* A file saved from a mailbox starts with the mbox separator, which
     * both MTAs drop on local submission: it is not part of the message.
     * "From : x" is a field in the obsolete syntax, so it stays. */
    if (sp->len >= 5 && memcmp(sp->msg, "From ", 5) == 0 &&
        line_at(sp, 0, &n, &next) && name_len(sp->msg, n, &colon) == 0)
        sp->pos = next;
}

static void start_body(pmc_msg_split *sp, size_t at)
{
    sp->in_body = 1;
    sp->body_at = at;
}

pmc_status pmc_msg_split_next(pmc_msg_split *sp, pmc_str *name,
                              pmc_str *value, int *more)
{
    size_t n, next, colon, k, v;
    const char *l;
    void *nul;

    *more = 0;
    if (sp->in_body)
        return PMC_OK;
    if (!line_at(sp, sp->pos, &n, &next)) {
        start_body(sp, sp->len);
        return PMC_OK;
    }
    l = sp->msg + sp->pos;
    if (n == 0) { /* the separator belongs to neither part */
        start_body(sp, next);
        return PMC_OK;
    }
    if ((k = name_len(l, n, &colon)) == 0) {
        start_body(sp, sp->pos);
        return PMC_OK;
    }
    v = colon + 1;
    if (!sp->leadspc && v < n && l[v] == ' ')
        v++;
    sp->value.len = 0;
    if (pmc_buf_append(&sp->value, l + v, n - v) != PMC_OK)
        return PMC_ERR_NOMEM;
    sp->pos = next;
    /* Continuation lines keep their leading blank; MTAs hand the folded
     * value over with a bare LF where the line ends were. */
    while (line_at(sp, sp->pos, &n, &next) &&
           (sp->msg[sp->pos] == ' ' || sp->msg[sp->pos] == '\t')) {
        if (pmc_buf_append(&sp->value, "\n", 1) != PMC_OK ||
            pmc_buf_append(&sp->value, sp->msg + sp->pos, n) != PMC_OK)
            return PMC_ERR_NOMEM;
        sp->pos = next;
    }
    /* "name\0value\0" cannot carry a NUL, and Postfix sends the value as
     * a C string: what follows the first NUL never reaches the filter. */
    nul = sp->value.len ? memchr(sp->value.data, 0, sp->value.len) : NULL;
    if (nul)
        sp->value.len = (size_t)((uint8_t *)nul - sp->value.data);
    name->ptr = l;
    name->len = k;
    value->ptr = sp->value.len ? (const char *)sp->value.data : "";
    value->len = sp->value.len;
    *more = 1;
    return PMC_OK;
}

pmc_status pmc_msg_split_rest(pmc_msg_split *sp, pmc_str *body)
{
    pmc_str name, value;
    int more = 1;
    pmc_status st;

    while (more)
        if ((st = pmc_msg_split_next(sp, &name, &value, &more)) != PMC_OK)
            return st;
    body->ptr = sp->msg + sp->body_at;
    body->len = sp->len - sp->body_at;
    return PMC_OK;
}

pmc_status pmc_msg_split_body(pmc_msg_split *sp, pmc_buf *out)
{
    pmc_str rest;
    pmc_status st;
    const char *p;
    size_t n, from = 0;

    if ((st = pmc_msg_split_rest(sp, &rest)) != PMC_OK)
        return st;
    p = rest.ptr;
    n = rest.len;
    /* SMTP carries every line with CR LF, so a filter sees the body that
     * way whatever the file had; a bare CR is data and stays. */
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n' || (i > 0 && p[i - 1] == '\r'))
            continue;
        if (pmc_buf_append(out, p + from, i - from) != PMC_OK ||
            pmc_buf_append(out, "\r", 1) != PMC_OK)
            return PMC_ERR_NOMEM;
        from = i;
    }
    if (pmc_buf_append(out, p + from, n - from) != PMC_OK)
        return PMC_ERR_NOMEM;
    /* DATA cannot end inside a line, so an MTA always has the last line
     * end; a trailing CR is taken as a CR LF that lost its LF. */
    if (n > 0 && p[n - 1] != '\n' &&
        pmc_buf_append(out, p[n - 1] == '\r' ? "\n" : "\r\n",
                       p[n - 1] == '\r' ? 1 : 2) != PMC_OK)
        return PMC_ERR_NOMEM;
    return PMC_OK;
}

void pmc_msg_split_free(pmc_msg_split *sp)
{
    pmc_buf_free(&sp->value);
}

/* ---- the message, event by event ------------------------------------- */

static pmc_status nomem(pmc_client *c)
{
    return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                         "out of memory splitting the message");
}

static pmc_status content(pmc_client *c, const void *msg, size_t len,
                          pmc_buf *body, pmc_result *r)
{
    pmc_msg_split sp;
    pmc_str name, value;
    int more = 1;
    pmc_status st;

    if ((st = pmc_client_data(c, r)) != PMC_OK || ended(c))
        return st;
    pmc_msg_split_init(&sp, msg, len,
                       (c->protocol & PMC_P_HDR_LEADSPC) != 0);
    while (more) {
        if (pmc_msg_split_next(&sp, &name, &value, &more) != PMC_OK) {
            st = nomem(c);
            goto out;
        }
        if (more &&
            ((st = pmc_client_header(c, name, value, r)) != PMC_OK ||
             ended(c)))
            goto out;
    }
    if ((st = pmc_client_eoh(c, r)) != PMC_OK || ended(c))
        goto out;
    if (pmc_msg_split_body(&sp, body) != PMC_OK) {
        st = nomem(c);
        goto out;
    }
    if ((st = pmc_client_body(c, body->data, body->len, r)) != PMC_OK ||
        ended(c))
        goto out;
    st = pmc_client_eom(c, r);
out:
    pmc_msg_split_free(&sp);
    return st;
}

pmc_status pmc_client_message(pmc_client *c, pmc_str from,
                              const pmc_str *rcpts, size_t nrcpts,
                              const void *msg, size_t len, pmc_result *r)
{
    pmc_buf tmp = {0};
    size_t accepted = 0;
    pmc_status st;

    if (r == NULL)
        r = &c->scratch;
    pmci_cli_result_reset(c, r);
    if (rcpts == NULL || nrcpts == 0 || (msg == NULL && len > 0))
        return pmci_cli_fail(c, PMC_ERR_ARGUMENT, c->rx,
                             "a message needs at least one recipient and "
                             "its text");
    if ((st = pmc_client_mail(c, &from, 1, r)) != PMC_OK || ended(c))
        return st;
    for (size_t i = 0; i < nrcpts; i++) {
        if ((st = pmc_client_rcpt(c, &rcpts[i], 1, r)) != PMC_OK ||
            ended(c))
            return st;
        if (r->code != 'r' && r->code != 't' && r->code != 'y')
            accepted++;
    }
    /* With every recipient refused an MTA never gets to DATA. */
    if (accepted == 0)
        return PMC_OK;
    st = content(c, msg ? msg : "", len, &tmp, r);
    pmc_buf_free(&tmp);
    return st;
}
