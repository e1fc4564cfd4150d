/* How a session ends, and how a message is abandoned: abort and close owed
 * to the handlers, and failure with its sentence.  Below the conversation
 * (session.c) so the parts it calls (commands, macros, negotiation, the
 * state table) may end the session without calling back up into it. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

/* A message that ends without an EOM ends with abort, however it ended:
 * a filter that keeps per-message state frees it in eom or abort. */
void pmci_run_abort(pmc_session *s)
{
    if (!s->in_msg)
        return;
    s->in_msg = 0;
    pmci_forget_message_edits(s);
    if (s->h->abort) {
        s->cur_event = PMC_EV_ABORT;
        s->in_handler = 1;
        (void)s->h->abort(s, s->ud);
        s->in_handler = 0;
    }
    s->cur_event = PMC_EV_COUNT;
}

/* Close is owed once per connection (QUIT_NC starts a new one). */
void pmci_run_close(pmc_session *s)
{
    if (!s->conn_open)
        return;
    s->conn_open = 0;
    if (s->h->close) {
        s->cur_event = PMC_EV_CLOSE;
        s->in_handler = 1;
        (void)s->h->close(s, s->ud);
        s->in_handler = 0;
    }
    s->cur_event = PMC_EV_COUNT;
}

/* The end of the session, whatever ended it.  'closed' is set first so
 * actions from abort and close handlers are refused. */
void pmci_shut(pmc_session *s)
{
    s->closed = 1;
    s->pending = 0;
    s->pending_eob = 0;
    pmci_forget_message_edits(s);
    pmci_run_abort(s);
    pmci_run_close(s);
}

static pmc_status fail_closed(pmc_session *s)
{
    pmci_shut(s);
    return s->err.code;
}

pmc_status pmci_fail(pmc_session *s, pmc_status code, const char *fmt, ...)
{
    va_list ap;

    s->close_reason = PMC_CLOSE_ERROR;
    if (s->err.code == PMC_OK) {
        s->err.code = code;
        s->err.offset = s->cur_offset;
        va_start(ap, fmt);
        vsnprintf(s->err.message, sizeof s->err.message, fmt, ap);
        va_end(ap);
    }
    return fail_closed(s);
}

pmc_status pmci_fail_from_decoder(pmc_session *s)
{
    if (s->err.code == PMC_OK)
        s->err = s->dec.err;
    s->close_reason = PMC_CLOSE_ERROR;
    return fail_closed(s);
}
