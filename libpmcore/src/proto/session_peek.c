/* The session seen from outside: what its driver and its handlers read of
 * it (state, output, errors, negotiated values, counters), and the views
 * the server needs for its timeouts and draining.  Kept apart so session.c
 * holds only the conversation and stays free of server concerns. */
#include "internal.h"

/* Buffers a large packet or a large reply grew stay at that size for the
 * connection's life unless given back; with thousands of idle connections
 * that is most of the RSS.  Called between steps, when no handler holds a
 * pointer into them (pmci_session_trim, internal.h, decides when). */
void pmci_session_trim_now(pmc_session *s)
{
    pmc_decoder *d = &s->dec;

    if (d->partial.cap > PMCI_TRIM_KEEP &&
        (d->partial.len == 0 || d->partial_done)) {
        pmc_buf_free(&d->partial);
        d->partial_done = 0;
    }
    if (d->stash.cap > PMCI_TRIM_KEEP && !d->reading_stash)
        pmc_buf_free(&d->stash);
    if (s->out.cap > PMCI_TRIM_KEEP && s->out.len == 0)
        pmc_buf_free(&s->out);
    if (s->body.cap > PMCI_TRIM_KEEP && !s->in_msg)
        pmc_buf_free(&s->body);
}

pmc_close_reason pmc_session_close_reason(const pmc_session *s)
{
    return (pmc_close_reason)s->close_reason;
}

int pmc_session_is_pending(const pmc_session *s) { return s->pending; }
int pmc_session_is_closed(const pmc_session *s) { return s->closed; }

const uint8_t *pmc_session_output(const pmc_session *s, size_t *len)
{
    *len = s->out.len;
    return s->out.data;
}

void pmc_session_consume(pmc_session *s, size_t k)
{
    /* Taking everything, the usual case, needs no move. */
    if (k >= s->out.len)
        s->out.len = 0;
    else
        pmc_buf_consume(&s->out, k);
}

const pmc_error *pmc_session_error(const pmc_session *s)
{
    return s->err.code != PMC_OK ? &s->err : NULL;
}

const pmc_error *pmc_session_action_error(const pmc_session *s)
{
    return s->action_err.code != PMC_OK ? &s->action_err : NULL;
}

uint32_t pmc_session_version(const pmc_session *s) { return s->version; }
uint32_t pmc_session_actions(const pmc_session *s) { return s->actions; }
uint32_t pmc_session_protocol(const pmc_session *s) { return s->protocol; }

void pmc_session_offer(const pmc_session *s, uint32_t *version,
                       uint32_t *actions, uint32_t *protocol)
{
    if (version) *version = s->mta_version;
    if (actions) *actions = s->mta_actions;
    if (protocol) *protocol = s->mta_protocol;
}

void *pmc_session_userdata(const pmc_session *s) { return s->ud; }

pmc_event pmc_session_current_event(const pmc_session *s)
{
    return s->cur_event;
}

void pmc_session_stats_get(const pmc_session *s, pmc_session_stats *out)
{
    *out = s->stats;
}

const pmc_session_stats *pmci_session_stats(const pmc_session *s)
{
    return &s->stats;
}
