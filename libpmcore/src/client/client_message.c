/* Client convenience: one whole message from RFC 5322 text, split into
 * the events an MTA would send. */
#include "internal_client.h"

#include <string.h>

/* A verdict ended the message or the connection: the MTA stops here. */
static int ended(const pmc_client *c)
{
    pmc_client_state_info s;

    pmc_client_state(c, &s);
    return s.message_ended || s.connection_ended;
}

typedef struct cursor {
    const char *p;
    size_t len, pos;
} cursor;

/* The next line without its CR LF (or LF); 0 at the end of the text. */
static int next_line(cursor *cur, pmc_str *line)
{
    const char *s = cur->p + cur->pos, *nl;
    size_t left = cur->len - cur->pos, n;

    if (left == 0)
        return 0;
    nl = memchr(s, '\n', left);
    n = nl ? (size_t)(nl - s) : left;
    cur->pos += nl ? n + 1 : n;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    line->ptr = s;
    line->len = n;
    return 1;
}

static pmc_status send_header(pmc_client *c, pmc_str name, pmc_buf *value,
                              pmc_result *r)
{
    pmc_str v = {value->len ? (const char *)value->data : "", value->len};

    return pmc_client_header(c, name, v, r);
}

/* Headers go out one by one as they are parsed; the body starts after the
 * empty line, or at the first line that is neither a field nor a
 * continuation.  *body_at gets that offset. */
static pmc_status headers(pmc_client *c, cursor *cur, size_t *body_at,
                          pmc_buf *value, pmc_result *r)
{
    pmc_str line, name = {NULL, 0};
    size_t start;
    pmc_status st;
    int keep_space = (c->protocol & PMC_P_HDR_LEADSPC) != 0;

    for (;;) {
        start = cur->pos;
        if (!next_line(cur, &line) || line.len == 0) {
            *body_at = cur->pos;
            break;
        }
        if ((line.ptr[0] == ' ' || line.ptr[0] == '\t') && name.ptr) {
            /* MTAs pass folded values with bare LF between the lines. */
            if (pmc_buf_append(value, "\n", 1) != PMC_OK ||
                pmc_buf_append(value, line.ptr, line.len) != PMC_OK)
                return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                                     "out of memory joining a header");
            continue;
        }
        const char *colon = memchr(line.ptr, ':', line.len);
        if (colon == NULL) {
            *body_at = start;
            break;
        }
        if (name.ptr && (st = send_header(c, name, value, r)) != PMC_OK)
            return st;
        if (name.ptr && ended(c))
            return PMC_OK;
        name.ptr = line.ptr;
        name.len = (size_t)(colon - line.ptr);
        colon++;
        if (!keep_space && colon < line.ptr + line.len && *colon == ' ')
            colon++;
        value->len = 0;
        if (pmc_buf_append(value, colon,
                           (size_t)(line.ptr + line.len - colon)) != PMC_OK)
            return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                                 "out of memory copying a header");
    }
    if (name.ptr)
        return send_header(c, name, value, r);
    return PMC_OK;
}

/* SMTP bodies travel with CR LF line ends, whatever the text had. */
static pmc_status crlf(pmc_client *c, const char *p, size_t n, pmc_buf *out)
{
    size_t from = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n' || (i > 0 && p[i - 1] == '\r'))
            continue;
        if (pmc_buf_append(out, p + from, i - from) != PMC_OK ||
            pmc_buf_append(out, "\r", 1) != PMC_OK)
            return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                                 "out of memory converting the body");
        from = i;
    }
    if (pmc_buf_append(out, p + from, n - from) != PMC_OK)
        return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                             "out of memory converting the body");
    return PMC_OK;
}

static pmc_status content(pmc_client *c, const void *msg, size_t len,
                          pmc_buf *tmp, pmc_result *r)
{
    cursor cur = {msg, len, 0};
    size_t body_at = 0;
    pmc_status st;

    if ((st = pmc_client_data(c, r)) != PMC_OK || ended(c))
        return st;
    if ((st = headers(c, &cur, &body_at, tmp, r)) != PMC_OK || ended(c))
        return st;
    if ((st = pmc_client_eoh(c, r)) != PMC_OK || ended(c))
        return st;
    tmp->len = 0;
    if ((st = crlf(c, (const char *)msg + body_at, len - body_at, tmp)) !=
        PMC_OK)
        return st;
    if ((st = pmc_client_body(c, tmp->data, tmp->len, r)) != PMC_OK ||
        ended(c))
        return st;
    return pmc_client_eom(c, r);
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
