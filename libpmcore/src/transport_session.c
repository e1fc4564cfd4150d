/* Client transport into a pmc_session in the same thread: the client's
 * bytes are fed straight to the session and its output is read back, so
 * tests run the whole protocol without a socket. */
#include "internal_client.h"

#include <string.h>

static int ses_send(void *ctx, const uint8_t *p, size_t n)
{
    pmc_session *s = ctx;
    pmc_status st = pmc_session_feed(s, p, n);

    /* CLOSED without an error means QUIT was seen (or the session was
     * ended): like a socket whose peer is gone, the bytes vanish and the
     * next read reports end of stream. */
    if (st == PMC_OK || (st == PMC_ERR_CLOSED && pmc_session_error(s) == NULL))
        return 0;
    return PMC_TRANSPORT_FAILED;
}

static long ses_recv(void *ctx, uint8_t *p, size_t n)
{
    pmc_session *s = ctx;
    size_t len = 0;
    const uint8_t *out = pmc_session_output(s, &len);

    if (len == 0)
        return pmc_session_is_closed(s) ? 0 : PMC_TRANSPORT_FAILED;
    if (len > n)
        len = n;
    memcpy(p, out, len);
    pmc_session_consume(s, len);
    return (long)len;
}

static const char *ses_why(void *ctx)
{
    const pmc_session *s = ctx;
    const pmc_error *e = pmc_session_error(s);

    if (e != NULL)
        return e->message;
    if (!pmc_session_is_closed(s))
        return "the in-process session has nothing to send and is still "
               "open, so no reply can come (a pending handler, or a reply "
               "the filter does not owe)";
    return NULL;
}

static void ses_close(void *ctx)
{
    (void)pmc_session_eof(ctx);
}

void pmc_transport_session(pmc_transport *tr, pmc_session *s)
{
    memset(tr, 0, sizeof *tr);
    tr->send = ses_send;
    tr->recv = ses_recv;
    tr->ctx = s;
    tr->close = ses_close;
    tr->why = ses_why;
}
