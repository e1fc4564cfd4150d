/* Read-only views of session state the server needs for its timeouts and
 * for draining; kept apart so session.c stays free of server concerns. */
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
