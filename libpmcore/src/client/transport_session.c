/* Client transport into a pmc_session in the same thread: the client's
 * bytes are fed straight to the session and its output is read back, so
 * tests run the whole protocol without a socket. */
#include "internal_client.h"

#include <stdlib.h>
#include <string.h>

/* The transport's context with a wait hook: the session and the hook that
 * answers pending handlers.  Without a hook the session itself is the ctx
 * (no allocation, nothing to free). */
typedef struct wctx {
    pmc_session *s;
    void (*wait)(pmc_session *s, void *arg);
    void *arg;
    int stuck;  /* the last wait did not resume */
} wctx;

/* Let the hook answer while it makes progress: the session leaves the
 * pending state, or goes on to a queued packet that pends again. */
static void run_wait(wctx *w)
{
    pmc_session *s = w->s;

    w->stuck = 0;
    while (pmc_session_is_pending(s) && !pmc_session_is_closed(s)) {
        uint64_t before = pmci_session_stats(s)->packets_in;
        w->wait(s, w->arg);
        if (pmc_session_is_pending(s) && !pmc_session_is_closed(s) &&
            pmci_session_stats(s)->packets_in == before) {
            w->stuck = 1;
            return;
        }
    }
}

static int feed(pmc_session *s, const uint8_t *p, size_t n)
{
    pmc_status st = pmc_session_feed(s, p, n);

    /* CLOSED without an error means QUIT was seen (or the session was
     * ended): like a socket whose peer is gone, the bytes vanish and the
     * next read reports end of stream. */
    if (st == PMC_OK || (st == PMC_ERR_CLOSED && pmc_session_error(s) == NULL))
        return 0;
    return PMC_TRANSPORT_FAILED;
}

static int ses_send(void *ctx, const uint8_t *p, size_t n)
{
    return feed(ctx, p, n);
}

static long take(pmc_session *s, uint8_t *p, size_t n)
{
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

static long ses_recv(void *ctx, uint8_t *p, size_t n)
{
    return take(ctx, p, n);
}

static const char *why(const pmc_session *s)
{
    const pmc_error *e = pmc_session_error(s);

    if (e != NULL)
        return e->message;
    if (!pmc_session_is_closed(s))
        return "the in-process session has nothing to send and is still "
               "open, so no reply can come (a pending handler, a reply "
               "the filter does not owe, or a command it dropped as out of "
               "order: docs/state-table.md)";
    return NULL;
}

static const char *ses_why(void *ctx)
{
    return why(ctx);
}

static void ses_close(void *ctx)
{
    (void)pmc_session_eof(ctx);
}

static int w_send(void *ctx, const uint8_t *p, size_t n)
{
    wctx *w = ctx;
    int rc = feed(w->s, p, n);

    if (rc == 0)
        run_wait(w);
    return rc;
}

static long w_recv(void *ctx, uint8_t *p, size_t n)
{
    wctx *w = ctx;
    size_t len = 0;

    pmc_session_output(w->s, &len);
    if (len == 0)
        run_wait(w);
    return take(w->s, p, n);
}

static const char *w_why(void *ctx)
{
    wctx *w = ctx;

    if (pmc_session_error(w->s) == NULL && w->stuck &&
        pmc_session_is_pending(w->s))
        return "a handler is pending and the wait hook did not resume it";
    return why(w->s);
}

static void w_close(void *ctx)
{
    wctx *w = ctx;

    (void)pmc_session_eof(w->s);
    free(w);
}

pmc_status pmc_transport_session(pmc_transport *tr, pmc_session *s,
                                 void (*wait)(pmc_session *s, void *arg),
                                 void *arg)
{
    wctx *w;

    if (wait == NULL) {
        memset(tr, 0, sizeof *tr);
        tr->send = ses_send;
        tr->recv = ses_recv;
        tr->ctx = s;
        tr->close = ses_close;
        tr->why = ses_why;
        return PMC_OK;
    }
    w = malloc(sizeof *w);
    if (w == NULL)
        return PMC_ERR_NOMEM;
    w->s = s;
    w->wait = wait;
    w->arg = arg;
    w->stuck = 0;
    memset(tr, 0, sizeof *tr);
    tr->send = w_send;
    tr->recv = w_recv;
    tr->ctx = w;
    tr->close = w_close;
    tr->why = w_why;
    return PMC_OK;
}
