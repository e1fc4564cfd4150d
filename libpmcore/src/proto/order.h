/*
 * The order of commands: which command the MTA may send after which, and
 * what happens to one that comes out of order.  The rule is libmilter's
 * state table, described with its deliberate differences in
 * docs/state-table.md; order.c owns it.  The session asks it before each
 * command, and the client asks it too, to know which of the commands it
 * sends the filter will drop unanswered.
 */
#ifndef PMCORE_ORDER_H
#define PMCORE_ORDER_H

#include "internal.h"

/* The states, numbered as libmilter numbers them: the skip walk in order.c
 * moves to the next number, so the order is part of the rule. */
enum pmci_state {
    PMCI_ST_INIT, PMCI_ST_OPTS, PMCI_ST_CONN, PMCI_ST_HELO, PMCI_ST_MAIL,
    PMCI_ST_RCPT, PMCI_ST_DATA, PMCI_ST_HDRS, PMCI_ST_EOHS, PMCI_ST_BODY,
    PMCI_ST_ENDM, PMCI_ST_QUIT, PMCI_ST_ABRT, PMCI_ST_UNKN, PMCI_ST_Q_NC,
    PMCI_ST_COUNT
};

/* Bit 'to' is set in pmci_next_states[from] when a command moving to state
 * 'to' may follow state 'from' directly. */
PMCI_HIDDEN extern const uint16_t pmci_next_states[PMCI_ST_COUNT];

/* What a command moving to state 'to' does to *state, given the protocol
 * bits the filter sent to the MTA (its NO* bits allow skips). */
enum pmci_order_result {
    PMCI_ORDER_DROP,  /* out of order even from HELO: dropped unanswered;
                         *state is now HELO, any open message is over */
    PMCI_ORDER_IN,    /* in order (perhaps by skips): *state is now 'to' */
    PMCI_ORDER_RESET  /* out of order: any open message is over, and the
                         command is handled from HELO; *state is 'to' */
};
PMCI_HIDDEN enum pmci_order_result pmci_order_move(int *state,
                                                   uint32_t protocol, int to);
/* The state a command letter moves to, or -1 for the commands outside the
 * table (MACRO, OPTNEG, ABORT, QUIT, QUIT_NC: see their own rules). */
PMCI_HIDDEN int pmci_order_state_of(uint8_t cmd);
/* ABORT: 1 and *state ABRT when it is in order; 0 and *state unchanged
 * when it is dropped. */
PMCI_HIDDEN int pmci_order_abort_move(int *state, uint32_t protocol);
/* After a verdict the MTA heard: 'ended' is 1 for ACCEPT, 2 for REJECT,
 * TEMPFAIL or DISCARD (in any reply form), 0 for anything else. */
PMCI_HIDDEN void pmci_order_after_verdict(int *state, int ended);

/* The slow path of pmci_order_admit: skips, and the recovery through HELO
 * (which may run the abort handler).  Returns 1 when the command is to be
 * handled, 0 when it is to be dropped unanswered. */
PMCI_HIDDEN int pmci_order_recover(pmc_session *s, int to);

/* Before handling a command that moves the conversation to state 'to'.
 * Inline: the direct transition is the case of every packet an MTA sends in
 * order, and it is one table lookup. */
static inline int pmci_order_admit(pmc_session *s, int to)
{
    if (pmci_next_states[s->state] & (1u << to)) {
        s->state = to;
        return 1;
    }
    return pmci_order_recover(s, to);
}

/* Before handling ABORT: 1 when it is in order (the abort handler is then
 * owed if a message is open), 0 when it is dropped. */
PMCI_HIDDEN int pmci_order_abort(pmc_session *s);

/* After a verdict went to the MTA: where the conversation stands. */
PMCI_HIDDEN void pmci_order_verdict(pmc_session *s, int v);

#endif
