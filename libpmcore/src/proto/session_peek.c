/* Read-only views of session state the server needs for its timeouts and
 * for draining, and the close reason accessor; kept apart so session.c
 * stays free of server concerns. */
#include "internal.h"

/* A packet has started to arrive but is not complete. */
int pmci_session_partial(const pmc_session *s)
{
    return pmc_decoder_pending(&s->dec) > 0;
}

/* Between MAIL and the end of that message: the MTA owes more of it. */
int pmci_session_in_message(const pmc_session *s)
{
    return s->in_msg;
}

/* Input the session holds unread (queued while a handler is pending, or a
 * partial packet): the server stops reading past a bound. */
size_t pmci_session_queued(const pmc_session *s)
{
    return pmc_decoder_pending(&s->dec);
}

/* Buffers a large packet or a large reply grew stay at that size for the
 * connection's life unless given back; with thousands of idle connections
 * that is most of the RSS.  Called between steps, when no handler holds a
 * pointer into them. */
void pmci_session_trim(pmc_session *s)
{
    enum { KEEP = 16 * 1024 };
    pmc_decoder *d = &s->dec;

    if (s->pending)
        return;
    if (d->partial.cap > KEEP && (d->partial.len == 0 || d->partial_done)) {
        pmc_buf_free(&d->partial);
        d->partial_done = 0;
    }
    if (d->stash.cap > KEEP && !d->reading_stash)
        pmc_buf_free(&d->stash);
    if (s->out.cap > KEEP && s->out.len == 0)
        pmc_buf_free(&s->out);
    if (s->body.cap > KEEP && !s->in_msg)
        pmc_buf_free(&s->body);
}

pmc_close_reason pmc_session_close_reason(const pmc_session *s)
{
    return (pmc_close_reason)s->close_reason;
}
