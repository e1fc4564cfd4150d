/*
 * Out-of-order commands get what libmilter's state table gives them, so a
 * filter moved from libmilter to pmcore sees the same events from the same
 * MTA bytes.  docs/state-table.md is the prose of this file, including where
 * pmcore departs from libmilter on purpose.
 */
#include "order.h"

#define M(st) (1u << PMCI_ST_##st)

const uint16_t pmci_next_states[PMCI_ST_COUNT] = {
    [PMCI_ST_INIT] = M(OPTS),
    [PMCI_ST_OPTS] = M(CONN) | M(UNKN),
    [PMCI_ST_CONN] = M(HELO) | M(MAIL) | M(UNKN),
    [PMCI_ST_HELO] = M(HELO) | M(MAIL) | M(UNKN),
    [PMCI_ST_MAIL] = M(RCPT) | M(ABRT) | M(UNKN),
    [PMCI_ST_RCPT] = M(HDRS) | M(EOHS) | M(DATA) | M(BODY) | M(ENDM) |
                     M(RCPT) | M(ABRT) | M(UNKN),
    [PMCI_ST_DATA] = M(EOHS) | M(HDRS) | M(ABRT),
    [PMCI_ST_HDRS] = M(EOHS) | M(HDRS) | M(ABRT),
    [PMCI_ST_EOHS] = M(BODY) | M(ENDM) | M(ABRT),
    [PMCI_ST_BODY] = M(ENDM) | M(BODY) | M(ABRT),
    [PMCI_ST_ENDM] = M(QUIT) | M(MAIL) | M(UNKN) | M(Q_NC),
    [PMCI_ST_QUIT] = 0,
    /* Nothing follows ABORT directly: a later command gets in only by a
     * skip (NOUNKNOWN) or through the recovery below, which is what lets
     * MAIL come next. */
    [PMCI_ST_ABRT] = 0,
    [PMCI_ST_UNKN] = M(HELO) | M(MAIL) | M(RCPT) | M(ABRT) | M(DATA) |
                     M(BODY) | M(UNKN) | M(QUIT) | M(Q_NC),
    [PMCI_ST_Q_NC] = M(CONN) | M(UNKN),
};

/* The protocol bit that tells the MTA not to send the command that enters
 * each state: a state the MTA will not send may be passed over. */
static const uint32_t skip_bit[PMCI_ST_COUNT] = {
    [PMCI_ST_CONN] = PMC_P_NOCONNECT, [PMCI_ST_HELO] = PMC_P_NOHELO,
    [PMCI_ST_MAIL] = PMC_P_NOMAIL,    [PMCI_ST_RCPT] = PMC_P_NORCPT,
    [PMCI_ST_DATA] = PMC_P_NODATA,    [PMCI_ST_HDRS] = PMC_P_NOHDRS,
    [PMCI_ST_EOHS] = PMC_P_NOEOH,     [PMCI_ST_BODY] = PMC_P_NOBODY,
    [PMCI_ST_UNKN] = PMC_P_NOUNKNOWN,
};

/* May 'to' follow 'from', passing over the states after 'from' that
 * 'protocol' tells the MTA not to send?  The bits are those of one session
 * (the ones it sent), never a table shared with other sessions: libmilter
 * marks skips in a process-wide table that only grows, so one filter's
 * negotiation loosens the order for every later connection. */
static int reachable(uint32_t protocol, int from, int to)
{
    for (int st = from;;) {
        if (pmci_next_states[st] & (1u << to))
            return 1;
        if (++st >= PMCI_ST_COUNT || !(protocol & skip_bit[st]))
            return 0;
    }
}

enum pmci_order_result pmci_order_move(int *state, uint32_t protocol, int to)
{
    if (reachable(protocol, *state, to)) {
        *state = to;
        return PMCI_ORDER_IN;
    }
    /* Out of order: whatever message was open is over, and the command is
     * tried again as if the MTA had just said HELO. */
    *state = PMCI_ST_HELO;
    if (!reachable(protocol, PMCI_ST_HELO, to))
        return PMCI_ORDER_DROP;
    *state = to;
    return PMCI_ORDER_RESET;
}

int pmci_order_state_of(uint8_t cmd)
{
    switch (cmd) {
    case 'C': return PMCI_ST_CONN;
    case 'H': return PMCI_ST_HELO;
    case 'M': return PMCI_ST_MAIL;
    case 'R': return PMCI_ST_RCPT;
    case 'T': return PMCI_ST_DATA;
    case 'L': return PMCI_ST_HDRS;
    case 'N': return PMCI_ST_EOHS;
    case 'B': return PMCI_ST_BODY;
    case 'E': return PMCI_ST_ENDM;
    case 'U': return PMCI_ST_UNKN;
    default: return -1;
    }
}

int pmci_order_abort_move(int *state, uint32_t protocol)
{
    /* Inside a message ABORT is always in order.  Elsewhere libmilter
     * drops it but still moves to HELO, and right after OPTNEG or QUIT_NC
     * that makes it drop the CONNECT which follows; ABORT anywhere must be
     * harmless (docs/state-table.md), so a dropped one changes nothing. */
    if (!reachable(protocol, *state, PMCI_ST_ABRT))
        return 0;
    *state = PMCI_ST_ABRT;
    return 1;
}

void pmci_order_after_verdict(int *state, int ended)
{
    /* A refused recipient or unknown command leaves the transaction as it
     * was; any other refusal, and any ACCEPT, ends it. */
    if (ended == 1 ||
        (ended == 2 && *state != PMCI_ST_RCPT && *state != PMCI_ST_UNKN))
        *state = PMCI_ST_HELO;
}

int pmci_order_recover(pmc_session *s, int to)
{
    enum pmci_order_result r = pmci_order_move(&s->state, s->protocol, to);

    if (r != PMCI_ORDER_IN)
        pmci_run_abort(s);
    if (r == PMCI_ORDER_DROP) {
        /* Dropped with no handler and no reply, as libmilter drops it:
         * MTAs are tuned against that, and a handler run here would see a
         * message with no beginning. */
        s->stats.commands_ignored++;
        return 0;
    }
    return 1;
}

int pmci_order_abort(pmc_session *s)
{
    if (!pmci_order_abort_move(&s->state, s->protocol)) {
        s->stats.commands_ignored++;
        return 0;
    }
    return 1;
}

void pmci_order_verdict(pmc_session *s, int v)
{
    pmci_order_after_verdict(&s->state,
                             v == PMC_ACCEPT ? 1
                             : v == PMC_REJECT || v == PMC_TEMPFAIL ||
                                     v == PMC_DISCARD
                                 ? 2
                                 : 0);
}
