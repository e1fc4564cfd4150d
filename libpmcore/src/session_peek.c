/* Read-only views of session state the server needs for its timeouts and
 * for draining, and the close reason accessor; kept apart so session.c
 * stays free of server concerns. */
#include "internal.h"

#include "internal_server.h"

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

pmc_close_reason pmc_session_close_reason(const pmc_session *s)
{
    return (pmc_close_reason)s->close_reason;
}
