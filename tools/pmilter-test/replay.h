/* pmilter-test --replay: a captured conversation played against a milter
 * again, its replies compared with the captured ones. */
#ifndef PMT_REPLAY_H
#define PMT_REPLAY_H

#include "pmcore.h"

#include <stddef.h>

/* Exit codes of --replay; documented in pmilter-test.1. */
enum { PMT_REPLAY_SAME = 0, PMT_REPLAY_DIFFER = 1, PMT_REPLAY_ERROR = 2 };

/* replay.c: FILE or every *.pmcap of DIR against the socket; prints the
 * differences; returns one of the codes above. */
int pmt_replay(const char *path, const char *socket, int timeout_s,
               int quiet);

#endif
