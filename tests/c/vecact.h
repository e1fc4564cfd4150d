/*
 * vecact.h - running one script action of a vector.
 */
#ifndef VECACT_H
#define VECACT_H

#include "veclog.h"

/* Run the action in 'a' (its first token is the action word) on session
 * 's', logging "fail" or "symval" lines to 'g'.  'neg' is the negotiation
 * being built while the negotiate handler runs, NULL otherwise (the
 * 'negotiate' action needs it).  Returns -1 if the line is malformed (the
 * caller logs a runner error), 0 otherwise, also when the action failed. */
int vec_action(pmc_session *s, vlog *g, pmc_negotiation *neg, const vline *a);

#endif
